//! Classification of a text against a scheme: label occurrences found as phrases in the
//! tokenised, lower-cased, lightly stemmed text, weighted by label kind, specificity (rarity of
//! the label's words in the scheme and the concept's depth) and count; combined with the votes
//! of similar, already-classified documents.
//!
//! A concept earns only its own labels' evidence: a longer label claims the words it covers
//! (so "machine learning" does not also count as "learning"), and a parent gets nothing for
//! its children's matches.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ensemble_protocol::taxonomy::{Classification, Evidence, EvidenceSource, LabelKind, Neighbour};

use super::model::{Version, lang_matches};

/// Lucene's English stop words: never a label on their own.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Light English stemming: plurals, `-ing` and `-ed`.
pub fn stem(word: &str) -> String {
    let n = word.chars().count();
    if n <= 3 || !word.is_ascii() {
        return word.to_string();
    }
    if let Some(s) = word.strip_suffix("ies")
        && n > 4
    {
        return format!("{s}y");
    }
    if word.ends_with("sses") {
        return word[..word.len() - 2].to_string();
    }
    if word.ends_with("ss") || word.ends_with("us") || word.ends_with("is") {
        return word.to_string();
    }
    if let Some(s) = word.strip_suffix('s') {
        return s.to_string();
    }
    if let Some(s) = word.strip_suffix("ing")
        && n > 5
    {
        return s.to_string();
    }
    if let Some(s) = word.strip_suffix("ed")
        && n > 4
    {
        return s.to_string();
    }
    word.to_string()
}

/// The text's words: split on anything not a letter or digit, lower-cased, stemmed.
pub fn tokenise(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| stem(&w.to_lowercase()))
        .collect()
}

#[derive(Debug, Clone)]
struct Phrase {
    concept: String,
    kind: LabelKind,
    lang: String,
    label: String,
    tokens: Vec<String>,
    weight: f32,
}

/// The labels of a scheme version as phrases, by first word.
#[derive(Debug, Clone, Default)]
pub struct PhraseIndex {
    phrases: Vec<Phrase>,
    by_first: HashMap<String, Vec<usize>>,
}

fn kind_weight(kind: LabelKind) -> f32 {
    match kind {
        LabelKind::Pref => 1.0,
        LabelKind::Alt => 0.85,
        LabelKind::Hidden => 0.7,
    }
}

impl PhraseIndex {
    /// Indexes every label of `v` with its base weight.
    pub fn build(v: &Version) -> Self {
        let depths = v.depths();
        let mut phrases = Vec::new();
        for (id, c) in &v.concepts {
            for (kind, labels) in [
                (LabelKind::Pref, &c.pref_labels),
                (LabelKind::Alt, &c.alt_labels),
                (LabelKind::Hidden, &c.hidden_labels),
            ] {
                for l in labels {
                    let tokens = tokenise(&l.value);
                    if tokens.iter().all(|t| STOP_WORDS.contains(&t.as_str())) {
                        continue;
                    }
                    let depth = depths.get(id.as_str()).copied().unwrap_or(0);
                    phrases.push(Phrase {
                        concept: id.clone(),
                        kind,
                        lang: l.lang.clone(),
                        label: l.value.clone(),
                        tokens,
                        weight: kind_weight(kind) * (1.0 + 0.1 * depth.min(8) as f32),
                    });
                }
            }
        }
        // Rarity of each word across the scheme's labels.
        let mut df: HashMap<&str, u32> = HashMap::new();
        for p in &phrases {
            let words: HashSet<&str> = p.tokens.iter().map(String::as_str).collect();
            for w in words {
                *df.entry(w).or_default() += 1;
            }
        }
        let total = phrases.len().max(1) as f32;
        let idf: HashMap<String, f32> = df
            .into_iter()
            .map(|(w, n)| (w.to_string(), (1.0 + total / n as f32).ln()))
            .collect();
        let mut by_first: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, p) in phrases.iter_mut().enumerate() {
            let content: Vec<f32> = p
                .tokens
                .iter()
                .filter(|t| !STOP_WORDS.contains(&t.as_str()))
                .map(|t| idf.get(t).copied().unwrap_or(1.0))
                .collect();
            let mean = content.iter().sum::<f32>() / content.len().max(1) as f32;
            p.weight *= mean * (1.0 + 0.25 * (content.len().saturating_sub(1)) as f32);
            if let Some(first) = p.tokens.first() {
                by_first.entry(first.clone()).or_default().push(i);
            }
        }
        Self { phrases, by_first }
    }

    /// Label evidence per concept: (label, kind) → (occurrences, weight).
    fn label_evidence(
        &self,
        text: &str,
        language: Option<&str>,
    ) -> BTreeMap<String, Vec<(String, LabelKind, u32, f32)>> {
        let words = tokenise(text);
        let mut found: Vec<(usize, usize, usize)> = Vec::new();
        for (i, w) in words.iter().enumerate() {
            for &p in self.by_first.get(w).map_or(&[][..], Vec::as_slice) {
                let phrase = &self.phrases[p];
                if language
                    .is_some_and(|l| !phrase.lang.is_empty() && !lang_matches(&phrase.lang, l))
                {
                    continue;
                }
                let n = phrase.tokens.len();
                if words.len() >= i + n && words[i..i + n] == phrase.tokens[..] {
                    found.push((i, n, p));
                }
            }
        }
        // Longest first: a longer label claims its words; labels over the very same words
        // (homographs, several kinds) all count.
        found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut claimed = vec![false; words.len()];
        let mut spans: HashSet<(usize, usize)> = HashSet::new();
        let mut counts: HashMap<usize, u32> = HashMap::new();
        for (i, n, p) in found {
            if !spans.contains(&(i, n)) {
                if claimed[i..i + n].iter().any(|c| *c) {
                    continue;
                }
                claimed[i..i + n].iter_mut().for_each(|c| *c = true);
                spans.insert((i, n));
            }
            *counts.entry(p).or_default() += 1;
        }
        let mut out: BTreeMap<String, Vec<(String, LabelKind, u32, f32)>> = BTreeMap::new();
        for (p, count) in counts {
            let phrase = &self.phrases[p];
            let weight = phrase.weight * (1.0 + (count as f32).ln());
            out.entry(phrase.concept.clone()).or_default().push((
                phrase.label.clone(),
                phrase.kind,
                count,
                weight,
            ));
        }
        out
    }
}

/// The current concepts `id` stands for in `v`: itself when current, its replacements
/// (transitively, through `history` for concepts no longer in `v`) when deprecated; none when
/// it is not of this scheme or has no current replacement.
pub fn resolve(v: &Version, history: &BTreeMap<String, BTreeSet<String>>, id: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut seen = HashSet::new();
    let mut todo = vec![id.to_string()];
    while let Some(at) = todo.pop() {
        if !seen.insert(at.clone()) || seen.len() > 64 {
            continue;
        }
        match v.concepts.get(&at) {
            Some(c) if !c.deprecated => {
                out.insert(at);
            }
            Some(c) => todo.extend(c.replaced_by.iter().cloned()),
            None => todo.extend(history.get(&at).into_iter().flatten().cloned()),
        }
    }
    out.into_iter().collect()
}

/// Ranks the concepts of `v` for `text`, with the votes of `neighbours`.
pub fn classify(
    index: &PhraseIndex,
    v: &Version,
    history: &BTreeMap<String, BTreeSet<String>>,
    text: &str,
    language: Option<&str>,
    neighbours: &[Neighbour],
    limit: usize,
) -> (Vec<Classification>, u32) {
    #[derive(Default)]
    struct Acc {
        label: f32,
        votes: f32,
        voters: u32,
        evidence: Vec<Evidence>,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    for (concept, labels) in index.label_evidence(text, language) {
        // A deprecated concept's label is evidence for what replaces it.
        for target in resolve(v, history, &concept) {
            let a = acc.entry(target).or_default();
            for (label, kind, count, weight) in &labels {
                a.label += weight;
                a.evidence.push(Evidence {
                    source: EvidenceSource::Label,
                    text: label.clone(),
                    label_kind: Some(*kind),
                    occurrences: *count,
                    weight: *weight,
                });
            }
        }
    }
    let mut total_vote = 0.0f32;
    let mut used = 0u32;
    for n in neighbours {
        let score = n.score.max(0.0);
        if score == 0.0 || n.categories.is_empty() {
            continue;
        }
        total_vote += score;
        used += 1;
        let targets: BTreeSet<String> = n
            .categories
            .iter()
            .flat_map(|c| resolve(v, history, c))
            .collect();
        for t in targets {
            let a = acc.entry(t).or_default();
            a.votes += score;
            a.voters += 1;
        }
    }
    let max_label = acc.values().map(|a| a.label).fold(0.0f32, f32::max);
    let mut out: Vec<Classification> = acc
        .into_iter()
        .map(|(concept, mut a)| {
            let label_rel = if max_label > 0.0 {
                a.label / max_label
            } else {
                0.0
            };
            let vote_share = if total_vote > 0.0 {
                a.votes / total_vote
            } else {
                0.0
            };
            let score = if total_vote > 0.0 {
                0.5 * label_rel + 0.5 * vote_share
            } else {
                label_rel
            };
            if a.voters > 0 {
                a.evidence.push(Evidence {
                    source: EvidenceSource::Neighbours,
                    text: format!(
                        "{} of {used} similar classified documents are classified here (or \
                         under a concept it replaces)",
                        a.voters
                    ),
                    label_kind: None,
                    occurrences: a.voters,
                    weight: a.votes,
                });
            }
            a.evidence.sort_by(|x, y| y.weight.total_cmp(&x.weight));
            Classification {
                label: v.label(&concept, language),
                concept,
                score,
                label_score: a.label,
                vote_score: vote_share,
                evidence: a.evidence,
            }
        })
        .filter(|c| c.score > 0.0)
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| b.label_score.total_cmp(&a.label_score))
            .then_with(|| a.concept.cmp(&b.concept))
    });
    out.truncate(limit);
    (out, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stemming_is_light() {
        assert_eq!(stem("networks"), "network");
        assert_eq!(stem("policies"), "policy");
        assert_eq!(stem("learning"), "learn");
        assert_eq!(stem("learned"), "learn");
        assert_eq!(stem("class"), "class");
        assert_eq!(stem("bus"), "bus");
        assert_eq!(
            tokenise("Neural Networks, trained!"),
            ["neural", "network", "train"]
        );
    }
}
