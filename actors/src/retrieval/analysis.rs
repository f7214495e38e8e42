//! How a collection's text becomes terms: the language and the analyzer, chosen at creation
//! and used for documents and queries alike.

use std::collections::HashMap;

use ensemble_protocol::retrieval::RetrievalError;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer, TokenStream,
};

/// The languages a collection may be in, by the name a user gives.
const LANGUAGES: &[(&str, Language)] = &[
    ("arabic", Language::Arabic),
    ("danish", Language::Danish),
    ("dutch", Language::Dutch),
    ("english", Language::English),
    ("finnish", Language::Finnish),
    ("french", Language::French),
    ("german", Language::German),
    ("greek", Language::Greek),
    ("hungarian", Language::Hungarian),
    ("italian", Language::Italian),
    ("norwegian", Language::Norwegian),
    ("portuguese", Language::Portuguese),
    ("romanian", Language::Romanian),
    ("russian", Language::Russian),
    ("spanish", Language::Spanish),
    ("swedish", Language::Swedish),
    ("tamil", Language::Tamil),
    ("turkish", Language::Turkish),
];

/// The analyzers, by name, and what each does.
const ANALYZERS: &[&str] = &["stemmed", "stemmed_keep_stopwords", "words", "ascii_folded"];

/// Words longer than this (in bytes) are dropped: they are hashes, base64 or run-together junk.
const MAX_TOKEN_BYTES: usize = 40;

/// The name tantivy's tokenizer manager knows the collection's analyzer by.
pub const ANALYZER_NAME: &str = "ensemble";

/// A collection's analysis settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The language's name.
    pub language: String,
    /// The analyzer's name.
    pub analyzer: String,
}

impl Analysis {
    /// The settings a creation asks for (English, `stemmed` when absent).
    pub fn new(language: Option<&str>, analyzer: Option<&str>) -> Result<Self, RetrievalError> {
        let language = language.unwrap_or("english").to_ascii_lowercase();
        if !LANGUAGES.iter().any(|(name, _)| *name == language) {
            return Err(RetrievalError::InvalidSetting {
                field: "language".into(),
                value: language,
                accepted: LANGUAGES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let analyzer = analyzer.unwrap_or("stemmed").to_ascii_lowercase();
        if !ANALYZERS.contains(&analyzer.as_str()) {
            return Err(RetrievalError::InvalidSetting {
                field: "analyzer".into(),
                value: analyzer,
                accepted: ANALYZERS.join(", "),
            });
        }
        Ok(Self { language, analyzer })
    }

    fn tantivy_language(&self) -> Language {
        LANGUAGES
            .iter()
            .find(|(name, _)| *name == self.language)
            .map_or(Language::English, |(_, l)| *l)
    }

    /// The text analyzer: words (runs of letters and digits), long ones dropped, lower-cased,
    /// then per analyzer accents folded, stop words removed, stemmed.
    pub fn text_analyzer(&self) -> TextAnalyzer {
        let language = self.tantivy_language();
        let base = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
            .filter(LowerCaser);
        let stop = || StopWordFilter::new(language).unwrap_or_else(|| StopWordFilter::remove([]));
        match self.analyzer.as_str() {
            "words" => base.build(),
            "stemmed_keep_stopwords" => base.filter(Stemmer::new(language)).build(),
            "ascii_folded" => base
                .filter(AsciiFoldingFilter)
                .filter(stop())
                .filter(Stemmer::new(language))
                .build(),
            _ => base.filter(stop()).filter(Stemmer::new(language)).build(),
        }
    }
}

/// The distinct terms of `text` with their counts, in order of first occurrence.
pub fn term_counts(analyzer: &mut TextAnalyzer, text: &str) -> Vec<(String, u32)> {
    let mut order: Vec<(String, u32)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        let term = &stream.token().text;
        match at.get(term) {
            Some(&i) => order[i].1 += 1,
            None => {
                at.insert(term.clone(), order.len());
                order.push((term.clone(), 1));
            }
        }
    }
    order
}

/// The terms of `text` in order, repeats kept (for adjacency and feedback counts).
pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_default_stems_lowercases_and_drops_stop_words() {
        let mut a = Analysis::new(None, None).unwrap().text_analyzer();
        let t = terms(&mut a, "The Running of the Mice: TESTS, tested!");
        assert_eq!(t, ["run", "mice", "test", "test"]);
        assert_eq!(
            term_counts(&mut a, "tests tested the test"),
            [("test".to_string(), 3)]
        );
    }

    #[test]
    fn words_analyzer_keeps_forms() {
        let mut a = Analysis::new(Some("english"), Some("words"))
            .unwrap()
            .text_analyzer();
        assert_eq!(terms(&mut a, "The Tests"), ["the", "tests"]);
    }

    #[test]
    fn unknown_settings_say_what_is_accepted() {
        let e = Analysis::new(Some("klingon"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("klingon") && e.contains("english"), "{e}");
        let e = Analysis::new(None, Some("fancy")).unwrap_err().to_string();
        assert!(e.contains("stemmed_keep_stopwords"), "{e}");
    }

    #[test]
    fn operators_and_unicode_are_just_text() {
        let mut a = Analysis::new(None, None).unwrap().text_analyzer();
        let t = terms(
            &mut a,
            "title:\"foo\" AND -bar* (baz) ~2 ^3 Ünïcødé 日本語 🙂",
        );
        assert!(t.contains(&"foo".to_string()) && t.contains(&"baz".to_string()));
        assert!(!t.iter().any(|w| w.contains(':') || w.contains('"')));
    }
}
