//! The development learner through its MCP tools, on the crates of
//! `../shared/data/learning/development/crates-train.txt` (read from the local cargo registry).
//!
//! Split as the data README suggests: crates whose `md5(name) % 5 == 1` are the validation
//! crates, the others (`!= 0`, `!= 1`) are learned with `development_learn` (each with its
//! `Cargo.toml` dependencies).
//!
//! **Imports (task V1).** For each `.rs` file of a validation crate, its `use` items are
//! removed, and every imported path that names std, core, alloc or another crate (not
//! `crate::`/`self::`/`super::`, globs or renames) whose leaf still occurs in the body is to be
//! predicted: `development_suggest_imports` with the crate's name and dependencies. Reported:
//! top-1 and top-3 per import, per-file recall (top-1) and the share of files whose whole set is
//! right, with the most-frequent-path floor computed on the same files. `--codebase` also
//! learns half of each validation crate's files (by a hash of the path) and tests the other
//! half, both ways: the codebase being written is known to the learner, as with
//! `ensemble learn development .`. With `DEV_EVAL_MISSES=1` in the environment, each top-1
//! miss is printed on stderr (`MISS`, crate, name, expected path, first suggestion), for error
//! analysis.
//!
//! **Style (task V2).** Into each validation file that allows it, one convention break is
//! injected at a time — a function or type name in the wrong casing, the first std `use` moved
//! after the other crates' ones, a `let` binding of a common value renamed to another name of
//! the file — and `development_check_style` (min_confidence 0.9) is asked. A finding on the
//! injected line with the injected rule is a true positive; any other finding on the broken
//! file is counted false. The clean files are checked too (every finding there is false).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ensemble_actors::learning::development::language::{
    ImportKind, ItemKind, Language, Rust, UseClass,
};
use serde_json::json;

use super::crates::{registry_dirs, rs_files, strip_uses};
use super::{Client, call, session};

/// One crate: its name, directory, dependencies and `.rs` files (relative paths).
struct Crate {
    name: String,
    dir: PathBuf,
    deps: Vec<String>,
    files: Vec<String>,
}

/// MD5 of `data` (RFC 1321), for the README's split.
fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    let (mut a0, mut b0, mut c0, mut d0) =
        (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, v) in [a0, b0, c0, d0].iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// `int(md5(name).hexdigest(), 16) % 5`.
fn bucket(name: &str) -> u32 {
    md5(name.as_bytes())
        .iter()
        .fold(0u32, |r, b| (r * 256 + u32::from(*b)) % 5)
}

fn load(list: &Path) -> anyhow::Result<Vec<Crate>> {
    let regs = registry_dirs();
    let mut out = Vec::new();
    let mut missing = 0;
    for line in std::fs::read_to_string(list)?.lines() {
        let Some((name, version)) = line.trim().split_once(' ') else {
            continue;
        };
        let Some(dir) = regs
            .iter()
            .map(|r| r.join(format!("{name}-{version}")))
            .find(|d| d.is_dir())
        else {
            missing += 1;
            continue;
        };
        let mut files = Vec::new();
        rs_files(&dir, &dir, &mut files);
        out.push(Crate {
            name: name.to_string(),
            deps: ensemble::manifest::read(&dir)
                .map(|p| p.dependencies)
                .unwrap_or_default(),
            dir,
            files,
        });
    }
    if missing > 0 {
        eprintln!(
            "note: {missing} crates of the list are not unpacked in the cargo registry (see the \
             data README to fetch them); evaluating without them"
        );
    }
    Ok(out)
}

fn half_of(path: &str) -> u8 {
    (path
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 2) as u8
}

async fn learn_files(
    client: &Client,
    c: &Crate,
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<(u64, usize)> {
    let (mut learned, mut bytes) = (0u64, 0usize);
    let mut batch = Vec::new();
    let files: Vec<&String> = c.files.iter().filter(|f| keep(f)).collect();
    for (i, f) in files.iter().enumerate() {
        let Ok(content) = std::fs::read_to_string(c.dir.join(f)) else {
            continue;
        };
        bytes += content.len();
        batch.push(json!({"path": f, "content": content}));
        if batch.len() == 200 || i + 1 == files.len() {
            let a = call(
                client,
                "development_learn",
                json!({"files": std::mem::take(&mut batch), "crate": c.name,
                       "dependencies": c.deps}),
            )
            .await?;
            learned += a["learned"].as_u64().unwrap_or(0);
        }
    }
    Ok((learned, bytes))
}

/// Task V1 figures.
#[derive(Default)]
struct Imports {
    n: usize,
    top1: usize,
    top3: usize,
    floor1: usize,
    floor3: usize,
    files: usize,
    file_recall: f64,
    files_exact: usize,
}

impl Imports {
    fn print(&self, what: &str) {
        let n = self.n.max(1) as f64;
        println!(
            "| {what} | {} ({} files) | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            self.n,
            self.files,
            self.top1 as f64 / n,
            self.top3 as f64 / n,
            self.file_recall / self.files.max(1) as f64,
            self.files_exact as f64 / self.files.max(1) as f64,
            self.floor1 as f64 / n,
            self.floor3 as f64 / n,
        );
    }
}

/// The most-frequent-path floor: per leaf, paths ranked by the training files importing them.
type Floor = BTreeMap<String, BTreeMap<String, usize>>;

fn floor_counts(crates: &[&Crate]) -> Floor {
    let mut floor: Floor = BTreeMap::new();
    for c in crates {
        for f in &c.files {
            let Ok(src) = std::fs::read_to_string(c.dir.join(f)) else {
                continue;
            };
            let Ok(e) = Rust.extract(&src) else { continue };
            let mut seen = BTreeSet::new();
            for i in &e.imports {
                if i.kind == ImportKind::Plain
                    && !i.is_local()
                    && seen.insert((i.leaf.clone(), i.path.clone()))
                {
                    *floor
                        .entry(i.leaf.clone())
                        .or_default()
                        .entry(i.path.clone())
                        .or_default() += 1;
                }
            }
        }
    }
    floor
}

async fn test_files(
    client: &Client,
    c: &Crate,
    keep: impl Fn(&str) -> bool,
    floor: &Floor,
    out: &mut Imports,
) -> anyhow::Result<()> {
    let misses = std::env::var_os("DEV_EVAL_MISSES").is_some();
    for f in c.files.iter().filter(|f| keep(f)) {
        let Ok(src) = std::fs::read_to_string(c.dir.join(f)) else {
            continue;
        };
        let Ok(e) = Rust.extract(&src) else { continue };
        let body = strip_uses(&src);
        let Ok(b) = Rust.extract(&body) else { continue };
        let truth: BTreeMap<String, String> = e
            .imports
            .iter()
            .filter(|i| i.kind == ImportKind::Plain && !i.is_local() && i.leaf != "self")
            .filter(|i| b.used.contains(&i.leaf))
            .map(|i| (i.leaf.clone(), i.path.clone()))
            .collect();
        if truth.is_empty() {
            continue;
        }
        let answer = call(
            client,
            "development_suggest_imports",
            json!({"content": body, "path": f, "crate": c.name, "dependencies": c.deps,
                   "limit": if misses { 20 } else { 3 }}),
        )
        .await?;
        let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in answer["names"].as_array().into_iter().flatten() {
            let paths = n["candidates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["path"].as_str().map(String::from))
                .collect();
            got.insert(n["name"].as_str().unwrap_or_default().to_string(), paths);
        }
        let mut right = 0;
        for (leaf, path) in &truth {
            let ranked = got.get(leaf).cloned().unwrap_or_default();
            out.n += 1;
            if ranked.first() == Some(path) {
                out.top1 += 1;
                right += 1;
            } else if misses {
                // Where the right path ranked among the first 20, if at all: a path the
                // learner does not know is beyond any ranking.
                let at = ranked
                    .iter()
                    .position(|p| p == path)
                    .map_or("absent".to_string(), |i| (i + 1).to_string());
                eprintln!(
                    "MISS\t{}\t{}\t{}\t{}\t{at}",
                    c.name,
                    leaf,
                    path,
                    ranked.first().map_or("-", |s| s.as_str())
                );
            }
            if ranked.iter().take(3).any(|p| p == path) {
                out.top3 += 1;
            }
            let mut fl: Vec<(&String, &usize)> = floor
                .get(leaf)
                .map(|m| m.iter().collect())
                .unwrap_or_default();
            fl.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            if fl.first().map(|x| x.0) == Some(path) {
                out.floor1 += 1;
            }
            if fl.iter().take(3).any(|x| x.0 == path) {
                out.floor3 += 1;
            }
        }
        out.files += 1;
        out.file_recall += right as f64 / truth.len() as f64;
        if right == truth.len() {
            out.files_exact += 1;
        }
    }
    Ok(())
}

/// Task V2 figures, per rule: injected, found, false findings.
#[derive(Default)]
struct Style {
    by_rule: BTreeMap<&'static str, (usize, usize)>,
    false_on_broken: usize,
    false_on_clean: usize,
    clean_files: usize,
    /// Findings on clean files, by rule, with a few of their messages.
    clean_by_rule: BTreeMap<String, (usize, Vec<String>)>,
}

/// One injected break: the broken file, its path, the rule and the line it is on.
type Break = (String, String, &'static str, usize);

fn breaks(src: &str, path: &str) -> Vec<Break> {
    let Ok(e) = Rust.extract(src) else {
        return Vec::new();
    };
    let lines: Vec<&str> = src.lines().collect();
    let mut layout: Vec<Break> = Vec::new();
    // A module with submodules in files of their own filed the other way: `src/a.rs` as
    // `src/a/mod.rs` and back.
    let is_root = matches!(path, "src/lib.rs" | "src/main.rs");
    let submodules = e.modules.iter().any(|m| !m.inline && !m.path_attr);
    if path.starts_with("src/") && !path.starts_with("src/bin/") && !is_root && submodules {
        let moved = match path.strip_suffix("/mod.rs") {
            Some(dir) => format!("{dir}.rs"),
            None => format!("{}/mod.rs", path.trim_end_matches(".rs")),
        };
        layout.push((src.to_string(), moved, "module_layout", 1));
    }
    // The unit tests, last in the file, moved up to just after the `use` lines.
    if let Some(m) = e.modules.iter().find(|m| m.inline && m.cfg_test && m.last)
        && let Some(after_uses) = e.use_items.iter().map(|u| u.lines.1).max()
    {
        // The module's first line: its attributes and doc comments above its name.
        let mut start = m.line;
        while start > 1 {
            let above = lines[start - 2].trim_start();
            if above.starts_with("#[") || above.starts_with("///") {
                start -= 1;
            } else {
                break;
            }
        }
        if after_uses < start && lines.get(m.line - 1).is_some_and(|l| l.contains("mod ")) {
            let mut v: Vec<&str> = lines[..after_uses].to_vec();
            v.extend(&lines[start - 1..]);
            v.extend(&lines[after_uses..start - 1]);
            let line = after_uses + (m.line - start) + 1;
            let moved = v.join("\n") + "\n";
            // Attributes kept apart from the module by a comment would be left dangling.
            if Rust.extract(&moved).is_ok() {
                layout.push((moved, path.to_string(), "module_layout", line));
            }
        }
    }
    let rename_at = |line: usize, col: usize, old: &str, new: &str| -> Option<String> {
        let l = lines.get(line - 1)?;
        let start = l.char_indices().nth(col - 1)?.0;
        if !l[start..].starts_with(old) {
            return None;
        }
        let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        v[line - 1] = format!("{}{}{}", &l[..start], new, &l[start + old.len()..]);
        Some(v.join("\n") + "\n")
    };
    use ensemble_actors::learning::development::style::Case;
    let mut out: Vec<(String, &'static str, usize)> = Vec::new();
    // A function in UpperCamelCase, a type in snake_case.
    if let Some(s) = e
        .sites
        .iter()
        .find(|s| s.kind == ItemKind::Function && s.name.contains('_') && !s.name.starts_with('_'))
        && let Some(b) = rename_at(
            s.line,
            s.column,
            &s.name,
            &Case::UpperCamel.convert(&s.name),
        )
    {
        out.push((b, "naming", s.line));
    }
    if let Some(s) = e
        .sites
        .iter()
        .find(|s| s.kind == ItemKind::Type && s.name.chars().skip(1).any(|c| c.is_uppercase()))
        && let Some(b) = rename_at(s.line, s.column, &s.name, &Case::Snake.convert(&s.name))
    {
        out.push((b, "naming", s.line));
    }
    // The first std `use` moved after the last external one.
    let items: Vec<_> = e.use_items.iter().filter(|u| !u.public).collect();
    let std_first = items.iter().position(|u| u.class == UseClass::Std);
    let ext_last = items.iter().rposition(|u| u.class == UseClass::External);
    if let (Some(s), Some(x)) = (std_first, ext_last)
        && s < x
        && items[..x].iter().all(|u| u.class != UseClass::Local)
    {
        let (a, b) = items[s].lines;
        let (_, after) = items[x].lines;
        let mut v: Vec<&str> = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let n = i + 1;
            if (a..=b).contains(&n) {
                continue;
            }
            v.push(l);
            if n == after {
                v.extend(&lines[a - 1..b]);
            }
        }
        let moved_to = after - (b - a + 1) + 1;
        out.push((v.join("\n") + "\n", "use_order", moved_to));
    }
    // A binding renamed to another binding name of the file.
    let names: BTreeSet<&str> = e.bindings.iter().map(|b| b.name.as_str()).collect();
    if let Some(bind) = e.bindings.iter().find(|b| b.name.len() > 2) {
        let other = names
            .iter()
            .find(|n| **n != bind.name && n.len() > 2 && !src.contains(&format!("let {n} = ")))
            .copied()
            .unwrap_or("value");
        if other != bind.name
            && let Some(b) = rename_at(bind.line, bind.column, &bind.name, other)
        {
            out.push((b, "binding_name", bind.line));
        }
    }
    out.into_iter()
        .map(|(b, rule, line)| (b, path.to_string(), rule, line))
        .chain(layout)
        .collect()
}

async fn check(
    client: &Client,
    c: &Crate,
    src: &str,
    path: &str,
) -> anyhow::Result<Vec<(String, usize, String)>> {
    let a = call(
        client,
        "development_check_style",
        json!({"content": src, "path": path, "crate": c.name, "min_confidence": 0.9}),
    )
    .await?;
    Ok(a["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["line"].as_u64().unwrap_or(0) as usize,
                f["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

async fn style(
    client: &Client,
    val: &[&Crate],
    keep: impl Fn(&str) -> bool,
    out: &mut Style,
) -> anyhow::Result<()> {
    for c in val {
        for f in c.files.iter().filter(|f| keep(f)) {
            let Ok(src) = std::fs::read_to_string(c.dir.join(f)) else {
                continue;
            };
            if Rust.extract(&src).is_err() {
                continue;
            }
            out.clean_files += 1;
            for (rule, _, message) in check(client, c, &src, f).await? {
                out.false_on_clean += 1;
                let e = out.clean_by_rule.entry(rule).or_default();
                e.0 += 1;
                if e.1.len() < 4 {
                    e.1.push(format!("{}/{f}: {message}", c.name));
                }
            }
            for (broken, path, rule, line) in breaks(&src, f) {
                let found = check(client, c, &broken, &path).await?;
                let e = out.by_rule.entry(rule).or_default();
                e.0 += 1;
                let hit = found.iter().any(|(r, l, _)| r == rule && *l == line);
                if hit {
                    e.1 += 1;
                }
                out.false_on_broken += found
                    .iter()
                    .filter(|(r, l, _)| !(r == rule && *l == line))
                    .count();
            }
        }
    }
    Ok(())
}

/// Runs the development evaluation.
pub async fn run(list: &Path, codebase: bool) -> anyhow::Result<()> {
    let crates = load(list)?;
    let (val, train): (Vec<&Crate>, Vec<&Crate>) = crates
        .iter()
        .filter(|c| bucket(&c.name) != 0)
        .partition(|c| bucket(&c.name) == 1);
    println!(
        "development: {} crates to learn, {} validation crates (md5(name) % 5 == 1)",
        train.len(),
        val.len()
    );
    let floor = floor_counts(&train);
    let s = session().await?;
    let started = std::time::Instant::now();
    let (mut files, mut bytes) = (0u64, 0usize);
    for c in &train {
        let (f, b) = learn_files(&s.client, c, |_| true).await?;
        files += f;
        bytes += b;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "learned {files} files, {:.1} MB in {secs:.1} s through development_learn ({:.1} MB/s, {:.0} files/s)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        files as f64 / secs
    );
    let stats = call(
        &s.client,
        "learning_stats",
        json!({"learner": "development"}),
    )
    .await?;
    println!("learner: {stats}");
    println!(
        "\n| imports of the validation crates | imports | top-1 | top-3 | per-file recall | files all right | floor top-1 | floor top-3 |\n|---|---|---|---|---|---|---|---|"
    );
    let mut cross = Imports::default();
    let started = std::time::Instant::now();
    for c in &val {
        test_files(&s.client, c, |_| true, &floor, &mut cross).await?;
    }
    cross.print("other crates learned");
    let per_file = started.elapsed().as_secs_f64() / cross.files.max(1) as f64;
    let _ = s.client.cancel().await;
    s.runtime.shutdown().await?;
    let mut st = Style::default();
    {
        let mut own = Imports::default();
        for half in [0u8, 1] {
            let s = session().await?;
            for c in &train {
                learn_files(&s.client, c, |_| true).await?;
            }
            for c in &val {
                learn_files(&s.client, c, |f| half_of(f) == half).await?;
            }
            if codebase {
                for c in &val {
                    test_files(&s.client, c, |f| half_of(f) != half, &floor, &mut own).await?;
                }
            }
            style(&s.client, &val, |f| half_of(f) != half, &mut st).await?;
            let _ = s.client.cancel().await;
            s.runtime.shutdown().await?;
        }
        if codebase {
            own.print("+ half of its own crate learned");
        }
    }
    println!(
        "\n(suggestions: {:.1} ms per file over MCP, in-process session)",
        per_file * 1e3
    );
    println!(
        "\n| style break injected | injected | found (precision counts every other finding as false) |\n|---|---|---|"
    );
    let (mut inj, mut found) = (0, 0);
    for (rule, (i, f)) in &st.by_rule {
        println!(
            "| {rule} | {i} | {f} ({:.3} recall) |",
            *f as f64 / (*i).max(1) as f64
        );
        inj += i;
        found += f;
    }
    let precision = found as f64 / (found + st.false_on_broken).max(1) as f64;
    for (rule, (n, examples)) in &st.clean_by_rule {
        println!("findings on clean files, {rule}: {n}");
        for e in examples {
            println!("  {e}");
        }
    }
    println!(
        "\nstyle (each validation crate half learned, the other half checked), min_confidence 0.9: recall {:.3} ({found}/{inj}), precision {:.3} ({} other findings on the broken files); {} findings on {} clean files",
        found as f64 / inj.max(1) as f64,
        precision,
        st.false_on_broken,
        st.false_on_clean,
        st.clean_files
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn md5_is_md5() {
        let hex: String = super::md5(b"The quick brown fox jumps over the lazy dog")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "9e107d9d372bb6826bd81d3542a419d6");
    }
}
