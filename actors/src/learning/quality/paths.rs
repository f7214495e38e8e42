//! What a path or a test id says by itself: whether it is a test, the unit it names, its
//! package, and the words of its name.

/// Source file extensions, stripped from a file name to get its stem.
const EXTENSIONS: &[&str] = &[
    "java", "kt", "kts", "scala", "groovy", "py", "rs", "go", "rb", "js", "jsx", "ts", "tsx",
    "mjs", "cjs", "cs", "c", "cc", "cpp", "cxx", "h", "hpp", "swift", "m", "php", "ex", "exs",
    "clj", "hs", "ml", "fs", "dart", "lua", "sh",
];

/// Directories that hold code without being part of its package name.
const ROOTS: &[&str] = &[
    "src",
    "main",
    "test",
    "tests",
    "java",
    "kotlin",
    "scala",
    "groovy",
    "lib",
    "testing",
    "__tests__",
    "spec",
    "it",
];

/// Whether `path` is a test file: under a test directory, or named as tests are.
pub fn is_test_path(path: &str) -> bool {
    let mut parts = path.split(['/', '\\']).filter(|p| !p.is_empty()).peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return is_test_name(stem(part));
        }
        let lower = part.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "test" | "tests" | "__tests__" | "spec" | "specs" | "testing" | "it"
        ) {
            return true;
        }
    }
    false
}

/// Whether a file stem is a test's name (`FooTest`, `TestFoo`, `FooTests`, `FooTestCase`,
/// `test_foo`, `foo_test`, `foo.spec`).
pub fn is_test_name(stem: &str) -> bool {
    unit_of_test(stem) != stem
}

/// The file name without directories and known extension (`a/b/FooTest.java` → `FooTest`).
pub fn stem(path: &str) -> &str {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((base, ext)) if !base.is_empty() && EXTENSIONS.contains(&ext) => base,
        _ => name,
    }
}

/// The unit a test's name is about, its test affix removed (`FooTest` → `Foo`, `TestFoo` →
/// `Foo`, `test_foo` → `foo`); the name itself when it has none.
pub fn unit_of_test(stem: &str) -> &str {
    for suffix in [
        "TestCase", "Tests", "Test", "IT", "_test", "_tests", ".test", ".spec",
    ] {
        if let Some(base) = stem.strip_suffix(suffix)
            && !base.is_empty()
        {
            return base;
        }
    }
    for prefix in ["test_", "Test"] {
        if let Some(base) = stem.strip_prefix(prefix)
            && base.starts_with(|c: char| c.is_ascii_uppercase() || prefix == "test_")
            && !base.is_empty()
        {
            return base;
        }
    }
    stem
}

/// A test id's file stem and package: `org.x.FooTest` → (`FooTest`, [org, x]);
/// `tests/foo_test.py::test_a` → (`foo_test`, [foo?]).
pub fn id_parts(id: &str) -> (&str, Vec<&str>) {
    // Test functions after the file or class: `file::fn`, `Class#method`, `Class.method()`.
    let id = id.split("::").next().unwrap_or(id);
    let id = id.split('#').next().unwrap_or(id);
    let id = id.split('$').next().unwrap_or(id);
    if id.contains('/') || id.contains('\\') {
        return (stem(id), package(id));
    }
    let id = match id.rsplit_once('.') {
        Some((base, ext)) if EXTENSIONS.contains(&ext) => base,
        _ => id,
    };
    let mut parts: Vec<&str> = id.split('.').filter(|p| !p.is_empty()).collect();
    let name = parts.pop().unwrap_or(id);
    (name, parts)
}

/// Top-level package names that start a Java-style package path.
const PACKAGE_ROOTS: &[&str] = &[
    "org", "com", "net", "io", "edu", "junit", "javax", "de", "fr", "uk", "ch",
];

/// The package a file is in: its directories from the first top-level package name
/// (`org`, `com`, …), or past the source roots (`src/test/java/org/x/FooTest.java` →
/// [org, x]). Compare packages with [`same_segment`].
pub fn package(path: &str) -> Vec<&str> {
    let dirs: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let dirs = &dirs[..dirs.len().saturating_sub(1)];
    let start = dirs
        .iter()
        .position(|d| PACKAGE_ROOTS.contains(d))
        .or_else(|| {
            dirs.iter()
                .rposition(|d| ROOTS.contains(&d.to_ascii_lowercase().as_str()))
                .map(|i| i + 1)
        })
        .unwrap_or(0);
    dirs[start..].to_vec()
}

/// Whether two package segments name the same package, across a version suffix
/// (`lang3` and `lang`, `math3` and `math`): a renamed package keeps its history.
pub fn same_segment(a: &str, b: &str) -> bool {
    segment_root(a) == segment_root(b)
}

/// A package segment without its version suffix (`lang3` → `lang`).
pub fn segment_root(segment: &str) -> &str {
    segment.trim_end_matches(|c: char| c.is_ascii_digit())
}

/// Whether a path is source code (by its extension), as opposed to documentation or data.
pub fn is_code(path: &str) -> bool {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    name.rsplit_once('.')
        .is_some_and(|(base, ext)| !base.is_empty() && EXTENSIONS.contains(&ext))
}

/// The directory of a path (`a/b/c.rs` → `a/b`; `c.rs` → ``).
pub fn dir(path: &str) -> &str {
    path.rsplit_once(['/', '\\']).map_or("", |(d, _)| d)
}

/// The words of a name, lower case: `HTMLParserTest` → [html, parser, test];
/// `foo_bar` → [foo, bar].
pub fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = name.chars().collect();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let boundary = i > 0 && {
            let p = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            (c.is_uppercase() && (p.is_lowercase() || p.is_ascii_digit()))
                || (c.is_uppercase() && p.is_uppercase() && next_lower)
                || (c.is_ascii_digit() != p.is_ascii_digit() && p.is_alphanumeric())
        };
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// How many leading components two packages share.
pub fn common_prefix<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> usize {
    a.iter()
        .zip(b)
        .take_while(|(x, y)| same_segment(x.as_ref(), y.as_ref()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_are_told_from_code() {
        assert!(is_test_path("src/test/java/org/x/FooTest.java"));
        assert!(is_test_path("tests/cli.rs"));
        assert!(is_test_path("pkg/test_foo.py"));
        assert!(is_test_path("lib/foo.spec.ts"));
        assert!(!is_test_path("src/main/java/org/x/Foo.java"));
        assert!(!is_test_path("src/main/java/org/x/Testable.java"));
        assert!(!is_test_path("src/contest.rs"));
    }

    #[test]
    fn units_and_ids() {
        assert_eq!(unit_of_test("FooTest"), "Foo");
        assert_eq!(unit_of_test("TestFoo"), "Foo");
        assert_eq!(unit_of_test("FooTestCase"), "Foo");
        assert_eq!(unit_of_test("test_foo"), "foo");
        assert_eq!(unit_of_test("Testable"), "Testable");
        assert_eq!(id_parts("org.x.FooTest"), ("FooTest", vec!["org", "x"]));
        assert_eq!(id_parts("org.x.FooTest#testA").0, "FooTest");
        assert_eq!(id_parts("tests/test_foo.py::test_a"), ("test_foo", vec![]));
        assert_eq!(
            package("src/test/java/org/x/FooTest.java"),
            vec!["org", "x"]
        );
        assert_eq!(stem("a/b/Foo.java"), "Foo");
        assert_eq!(
            package("test/org/mockitousage/X.java"),
            vec!["org", "mockitousage"]
        );
        assert_eq!(package("tests/unit/foo.py"), vec!["unit"]);
        assert_eq!(
            common_prefix(
                &["org", "apache", "lang3", "text"],
                &["org", "apache", "lang", "x"]
            ),
            3
        );
        assert!(is_code("src/Foo.java") && !is_code("src/changes.xml") && !is_code("README"));
        assert_eq!(words("HTMLParserTest"), ["html", "parser", "test"]);
        assert_eq!(words("read_utf8_bytes"), ["read", "utf", "8", "bytes"]);
    }
}
