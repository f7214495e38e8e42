//! Label search: exact, prefix and fuzzy (optimal string alignment, the restricted
//! Damerau–Levenshtein distance) matches over every label kind, ranked exact > prefix > fuzzy,
//! then pref > alt > hidden.

use ensemble_protocol::taxonomy::{LabelHit, LabelKind, MatchKind};

use super::model::{Version, display_label, lang_matches};

/// One label of one concept, normalised for matching.
#[derive(Debug, Clone)]
struct Entry {
    concept: String,
    kind: LabelKind,
    lang: String,
    value: String,
    norm: String,
    tokens: Vec<Vec<char>>,
}

/// Every label of a scheme version.
#[derive(Debug, Clone, Default)]
pub struct LabelIndex {
    entries: Vec<Entry>,
}

/// A query, normalised.
#[derive(Debug, Clone)]
pub struct Query {
    norm: String,
    tokens: Vec<Vec<char>>,
    language: Option<String>,
    fuzzy: bool,
}

/// Lower case, every run of non-alphanumeric characters one space.
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

fn tokens(norm: &str) -> Vec<Vec<char>> {
    norm.split(' ')
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().collect())
        .collect()
}

/// The edits a query token of this length may be away from a label token: none up to 3
/// characters, 1 up to 7, else 2.
pub fn allowed_edits(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Optimal string alignment distance between `a` and `b`, or `None` when above `max`.
pub fn osa(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let (n, m) = (a.len(), b.len());
    let mut prev2 = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[m];
    (d <= max).then_some(d)
}

impl Query {
    /// A query for `text`; `None` when it holds no letters or digits.
    pub fn new(text: &str, language: Option<String>, fuzzy: bool) -> Option<Self> {
        let norm = normalise(text);
        if norm.is_empty() {
            return None;
        }
        Some(Self {
            tokens: tokens(&norm),
            norm,
            language,
            fuzzy,
        })
    }
}

/// Every query token, in order, within its allowed edits of a label token (the last one may
/// match the start of a longer token); the total edits.
fn fuzzy_match(label: &[Vec<char>], query: &[Vec<char>]) -> Option<usize> {
    let mut pos = 0;
    let mut total = 0;
    for (qi, q) in query.iter().enumerate() {
        let max = allowed_edits(q.len());
        let last = qi + 1 == query.len();
        let mut found = None;
        for (j, t) in label.iter().enumerate().skip(pos) {
            let d = osa(q, t, max).or_else(|| {
                (last && t.len() > q.len())
                    .then(|| osa(q, &t[..q.len()], max))
                    .flatten()
            });
            if let Some(d) = d {
                found = Some((j, d));
                break;
            }
        }
        let (j, d) = found?;
        pos = j + 1;
        total += d;
    }
    Some(total)
}

fn kind_factor(kind: LabelKind) -> f32 {
    match kind {
        LabelKind::Pref => 1.0,
        LabelKind::Alt => 0.9,
        LabelKind::Hidden => 0.8,
    }
}

impl LabelIndex {
    /// Indexes every pref, alt and hidden label of `v`.
    pub fn build(v: &Version) -> Self {
        let mut entries = Vec::new();
        for (id, c) in &v.concepts {
            for (kind, labels) in [
                (LabelKind::Pref, &c.pref_labels),
                (LabelKind::Alt, &c.alt_labels),
                (LabelKind::Hidden, &c.hidden_labels),
            ] {
                for l in labels {
                    let norm = normalise(&l.value);
                    if norm.is_empty() {
                        continue;
                    }
                    entries.push(Entry {
                        concept: id.clone(),
                        kind,
                        lang: l.lang.clone(),
                        value: l.value.clone(),
                        tokens: tokens(&norm),
                        norm,
                    });
                }
            }
        }
        Self { entries }
    }

    /// The best hit of each concept of `v` for `q`, best first (at most `limit`).
    pub fn search(&self, v: &Version, q: &Query, limit: usize) -> Vec<LabelHit> {
        let mut best: std::collections::HashMap<&str, (LabelHit, usize)> =
            std::collections::HashMap::new();
        for e in &self.entries {
            if let Some(lang) = &q.language
                && !e.lang.is_empty()
                && !lang_matches(&e.lang, lang)
            {
                continue;
            }
            let (kind, distance, factor) = if e.norm == q.norm {
                (MatchKind::Exact, 0, 1.0)
            } else if e.norm.starts_with(&q.norm) {
                (MatchKind::Prefix, 0, 1.0)
            } else if e.norm.contains(&format!(" {}", q.norm)) {
                (MatchKind::Prefix, 0, 0.95)
            } else if q.fuzzy
                && let Some(d) = fuzzy_match(&e.tokens, &q.tokens)
            {
                (MatchKind::Fuzzy, d, 1.0)
            } else {
                continue;
            };
            let Some(concept) = v.concepts.get(&e.concept) else {
                continue;
            };
            let base = match kind {
                MatchKind::Exact => 1.0,
                MatchKind::Prefix => 0.7,
                MatchKind::Fuzzy => 0.4,
            };
            let mut score = base * factor * kind_factor(e.kind) - 0.05 * distance as f32;
            if concept.deprecated {
                score *= 0.95;
            }
            let hit = LabelHit {
                scheme: v.scheme.clone(),
                concept: e.concept.clone(),
                label: display_label(concept, q.language.as_deref())
                    .unwrap_or(&e.concept)
                    .to_string(),
                matched: (e.kind != LabelKind::Hidden).then(|| e.value.clone()),
                label_kind: e.kind,
                lang: e.lang.clone(),
                match_kind: kind,
                distance: distance as u32,
                deprecated: concept.deprecated,
                score,
            };
            let len = e.norm.len();
            match best.get(e.concept.as_str()) {
                Some((have, have_len))
                    if have.score > score || (have.score == score && *have_len <= len) => {}
                _ => {
                    best.insert(&e.concept, (hit, len));
                }
            }
        }
        let mut hits: Vec<(LabelHit, usize)> = best.into_values().collect();
        hits.sort_by(|a, b| {
            b.0.score
                .total_cmp(&a.0.score)
                .then_with(|| a.1.cmp(&b.1))
                .then_with(|| a.0.concept.cmp(&b.0.concept))
        });
        hits.truncate(limit);
        hits.into_iter().map(|(h, _)| h).collect()
    }
}

/// Merges hits of several schemes, best first.
pub fn merge(mut hits: Vec<LabelHit>, limit: usize) -> Vec<LabelHit> {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.label.len().cmp(&b.label.len()))
            .then_with(|| (&a.scheme, &a.concept).cmp(&(&b.scheme, &b.concept)))
    });
    hits.truncate(limit);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn osa_counts_transpositions_as_one_edit() {
        assert_eq!(osa(&chars("socer"), &chars("soccer"), 2), Some(1));
        assert_eq!(osa(&chars("fotoball"), &chars("football"), 2), Some(1));
        assert_eq!(osa(&chars("fotbal"), &chars("football"), 2), Some(2));
        assert_eq!(osa(&chars("ab"), &chars("ba"), 1), Some(1));
        assert_eq!(osa(&chars("kitten"), &chars("sitting"), 2), None);
    }

    #[test]
    fn normalising_folds_case_and_punctuation() {
        assert_eq!(
            normalise("  Arts, Culture & Entertainment "),
            "arts culture entertainment"
        );
    }
}
