//! Snippets: the passage of a document that holds the most distinct query terms, with the
//! matched words in `**bold**`.

use std::collections::HashSet;

use tantivy::tokenizer::{TextAnalyzer, TokenStream};

/// How long a snippet may be, in bytes of the original text (cut at word boundaries).
const WINDOW: usize = 220;

/// The best passage of `text` for `query_terms` (analyzed terms), or its start when no term
/// occurs; `None` for an empty text.
pub fn snippet(analyzer: &mut TextAnalyzer, text: &str, query_terms: &[String]) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    let wanted: HashSet<&str> = query_terms.iter().map(String::as_str).collect();
    // (start, end, matched term) of every word of the text.
    let mut words: Vec<(usize, usize, Option<String>)> = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        let t = stream.token();
        let hit = wanted.contains(t.text.as_str()).then(|| t.text.clone());
        words.push((t.offset_from, t.offset_to, hit));
    }
    let matched: Vec<usize> = (0..words.len()).filter(|&i| words[i].2.is_some()).collect();
    // The window (starting at a matched word) with the most distinct terms, then most matches.
    let mut best: Option<(usize, usize, (usize, usize))> = None;
    for &start in &matched {
        let from = words[start].0;
        let mut seen: HashSet<&str> = HashSet::new();
        let (mut count, mut last) = (0, start);
        for &i in matched.iter().filter(|&&i| i >= start) {
            if words[i].1 - from > WINDOW {
                break;
            }
            if let Some(t) = &words[i].2 {
                seen.insert(t);
            }
            count += 1;
            last = i;
        }
        let key = (seen.len(), count);
        if best.is_none_or(|(_, _, k)| key > k) {
            best = Some((start, last, key));
        }
    }
    let (from, to) = match best {
        // Some context before the first match, the rest of the window after the last.
        Some((first, last, _)) => {
            let span = words[last].1 - words[first].0;
            let slack = WINDOW.saturating_sub(span);
            let from = back_to_word(&words, words[first].0.saturating_sub(slack / 3));
            let to = forward_to_word(&words, text, from + WINDOW);
            (from, to.max(words[last].1))
        }
        None => (0, forward_to_word(&words, text, WINDOW)),
    };
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = from;
    for (s, e, hit) in words.iter().filter(|(s, e, _)| *s >= from && *e <= to) {
        if hit.is_some() {
            out.push_str(&text[at..*s]);
            out.push_str("**");
            out.push_str(&text[*s..*e]);
            out.push_str("**");
            at = *e;
        }
    }
    out.push_str(&text[at..to]);
    if to < text.len() {
        out.push('…');
    }
    Some(out.trim().to_string())
}

/// The start of the first word at or after `at` (0 when `at` is 0).
fn back_to_word(words: &[(usize, usize, Option<String>)], at: usize) -> usize {
    if at == 0 {
        return 0;
    }
    words.iter().map(|w| w.0).find(|&s| s >= at).unwrap_or(at)
}

/// The end of the last word ending at or before `at` (the text's end when it is shorter).
fn forward_to_word(words: &[(usize, usize, Option<String>)], text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    let word_end = words.iter().map(|w| w.1).take_while(|&e| e <= at).last();
    word_end.unwrap_or_else(|| {
        // No word ends before `at` (a text of symbols): cut on a character boundary.
        (0..=at)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::analysis::Analysis;

    fn a() -> TextAnalyzer {
        Analysis::new(None, None).unwrap().text_analyzer()
    }

    #[test]
    fn matched_words_are_bold_in_their_original_form() {
        let s = snippet(
            &mut a(),
            "Mice were running tests.",
            &["run".into(), "mice".into()],
        )
        .unwrap();
        assert_eq!(s, "**Mice** were **running** tests.");
    }

    #[test]
    fn a_long_text_is_cut_around_the_best_passage() {
        let filler = "lorem ipsum dolor sit amet ".repeat(30);
        let text = format!("{filler}the protein binds the receptor strongly {filler}");
        let s = snippet(&mut a(), &text, &["protein".into(), "receptor".into()]).unwrap();
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(
            s.contains("**protein**") && s.contains("**receptor**"),
            "{s}"
        );
        assert!(s.len() < 300, "{}", s.len());
    }

    #[test]
    fn no_match_gives_the_start_and_empty_text_nothing() {
        let s = snippet(&mut a(), "alpha beta gamma", &["zeta".into()]).unwrap();
        assert_eq!(s, "alpha beta gamma");
        assert_eq!(snippet(&mut a(), "  ", &["x".into()]), None);
    }

    #[test]
    fn a_text_without_words_is_cut_on_a_char_boundary() {
        let text = "—".repeat(200);
        let s = snippet(&mut a(), &text, &["x".into()]).unwrap();
        assert!(s.ends_with('…') && s.len() <= 230, "{s}");
    }

    #[test]
    fn unicode_text_is_cut_on_char_boundaries() {
        let text = "Ünïcødé ".repeat(60) + "日本語 protein";
        let s = snippet(&mut a(), &text, &["protein".into()]).unwrap();
        assert!(s.contains("**protein**"));
    }
}
