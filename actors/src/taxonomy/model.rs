//! One version of a concept scheme in memory: its concepts by id, the hierarchy both ways, and
//! display labels.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use ensemble_protocol::taxonomy::{Concept, ConceptRef, Label, TaxonomyDocument, VersionInfo};

/// One version of a scheme, normalised: every hierarchy statement is a `broader` one (the
/// concepts' `narrower` lists are empty; [`Version::children`] is the inverse).
#[derive(Debug, Clone)]
pub struct Version {
    /// The scheme's id.
    pub scheme: String,
    /// The version number.
    pub version: u32,
    /// When it was imported.
    pub created_at_ms: u64,
    /// The scheme's URI.
    pub uri: Option<String>,
    /// The scheme's titles.
    pub titles: Vec<Label>,
    /// Top concept ids.
    pub top_concepts: Vec<String>,
    /// Concepts by id.
    pub concepts: BTreeMap<String, Concept>,
    children: HashMap<String, Vec<String>>,
}

/// True when a label in `have` suits the wanted language: equal, or `wanted` is its primary
/// tag (`en` suits `en-GB`), case-insensitively.
pub fn lang_matches(have: &str, wanted: &str) -> bool {
    let (have, wanted) = (have.to_ascii_lowercase(), wanted.to_ascii_lowercase());
    have == wanted
        || have
            .strip_prefix(&wanted)
            .is_some_and(|r| r.starts_with('-'))
}

/// The preferred label to show for `concept`: in `lang` when it has one, else English, else
/// one without language, else the first.
pub fn display_label<'a>(concept: &'a Concept, lang: Option<&str>) -> Option<&'a str> {
    let labels = &concept.pref_labels;
    lang.and_then(|l| labels.iter().find(|x| lang_matches(&x.lang, l)))
        .or_else(|| labels.iter().find(|x| lang_matches(&x.lang, "en")))
        .or_else(|| labels.iter().find(|x| x.lang.is_empty()))
        .or_else(|| labels.first())
        .map(|l| l.value.as_str())
}

impl Version {
    /// Builds a version from a document already checked and normalised
    /// (see [`super::integrity::check`]).
    pub fn new(scheme: &str, version: u32, created_at_ms: u64, doc: TaxonomyDocument) -> Self {
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut concepts = BTreeMap::new();
        for mut c in doc.concepts {
            c.narrower.clear();
            for b in &c.broader {
                children.entry(b.clone()).or_default().push(c.id.clone());
            }
            concepts.insert(c.id.clone(), c);
        }
        for list in children.values_mut() {
            list.sort();
            list.dedup();
        }
        Self {
            scheme: scheme.to_string(),
            version,
            created_at_ms,
            uri: doc.uri,
            titles: doc.titles,
            top_concepts: doc.top_concepts,
            concepts,
            children,
        }
    }

    /// The version as a document (hierarchy as `broader` only), as stored.
    pub fn document(&self) -> TaxonomyDocument {
        TaxonomyDocument {
            uri: self.uri.clone(),
            titles: self.titles.clone(),
            top_concepts: self.top_concepts.clone(),
            concepts: self.concepts.values().cloned().collect(),
        }
    }

    /// The concept with its `narrower` list filled.
    pub fn full_concept(&self, id: &str) -> Option<Concept> {
        let mut c = self.concepts.get(id)?.clone();
        c.narrower = self.children(id).to_vec();
        Some(c)
    }

    /// Direct narrower concepts of `id`, sorted.
    pub fn children(&self, id: &str) -> &[String] {
        self.children.get(id).map_or(&[], Vec::as_slice)
    }

    /// Direct broader concepts of `id`.
    pub fn parents(&self, id: &str) -> &[String] {
        self.concepts.get(id).map_or(&[], |c| c.broader.as_slice())
    }

    /// Every concept id with children, and the children (for the global subtree index).
    pub fn child_lists(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.children.iter()
    }

    /// The display label of `id` (its id when it has no preferred label).
    pub fn label(&self, id: &str, lang: Option<&str>) -> String {
        self.concepts
            .get(id)
            .and_then(|c| display_label(c, lang))
            .unwrap_or(id)
            .to_string()
    }

    /// `id` with its display label.
    pub fn concept_ref(&self, id: &str, lang: Option<&str>) -> ConceptRef {
        ConceptRef {
            id: id.to_string(),
            label: self.label(id, lang),
        }
    }

    /// The title to show.
    pub fn title(&self) -> Option<String> {
        let probe = Concept {
            pref_labels: self.titles.clone(),
            ..Concept::default()
        };
        display_label(&probe, None).map(str::to_string)
    }

    fn walk(&self, id: &str, depth: Option<u32>, down: bool) -> Vec<(String, u32)> {
        let max = depth.unwrap_or(u32::MAX);
        let mut seen: HashSet<&str> = HashSet::from([id]);
        let mut queue = VecDeque::from([(id, 0u32)]);
        let mut out = Vec::new();
        while let Some((at, d)) = queue.pop_front() {
            if d >= max {
                continue;
            }
            let next = if down {
                self.children(at)
            } else {
                self.parents(at)
            };
            for n in next {
                if seen.insert(n.as_str()) {
                    out.push((n.clone(), d + 1));
                    queue.push_back((n.as_str(), d + 1));
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// Everything narrowerTransitive from `id` (within `depth` levels), nearest first.
    pub fn descendants(&self, id: &str, depth: Option<u32>) -> Vec<(String, u32)> {
        self.walk(id, depth, true)
    }

    /// Everything broaderTransitive from `id` (within `depth` levels), nearest first.
    pub fn ancestors(&self, id: &str, depth: Option<u32>) -> Vec<(String, u32)> {
        self.walk(id, depth, false)
    }

    /// The paths from a top (a concept without broader) down to `id`'s broader concept, at
    /// most `max` of them, each top first.
    pub fn paths(&self, id: &str, max: usize) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut stack: Vec<Vec<String>> =
            self.parents(id).iter().map(|p| vec![p.clone()]).collect();
        while let Some(path) = stack.pop() {
            if out.len() >= max {
                break;
            }
            let Some(head) = path.last() else { continue };
            let parents = self.parents(head);
            if parents.is_empty() {
                let mut p = path.clone();
                p.reverse();
                out.push(p);
                continue;
            }
            for p in parents {
                // The store holds no cycles; this guards a damaged record.
                if !path.contains(p) && path.len() < 64 {
                    let mut next = path.clone();
                    next.push(p.clone());
                    stack.push(next);
                }
            }
        }
        out.sort();
        out
    }

    /// Depth of every concept: 0 for concepts without broader, else 1 + the shallowest parent.
    pub fn depths(&self) -> HashMap<&str, u32> {
        let mut depth: HashMap<&str, u32> = HashMap::new();
        let mut queue: VecDeque<&str> = VecDeque::new();
        for (id, c) in &self.concepts {
            if c.broader.is_empty() {
                depth.insert(id, 0);
                queue.push_back(id);
            }
        }
        while let Some(at) = queue.pop_front() {
            let d = depth.get(at).copied().unwrap_or(0);
            for child in self.children(at) {
                if !depth.contains_key(child.as_str()) {
                    depth.insert(child, d + 1);
                    queue.push_back(child);
                }
            }
        }
        depth
    }

    /// The ids of the deprecated concepts with their replacements.
    pub fn replacements(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.concepts
            .iter()
            .filter(|(_, c)| !c.replaced_by.is_empty())
            .map(|(id, c)| (id, &c.replaced_by))
    }

    /// Counts for `taxonomy_list`.
    pub fn info(&self) -> VersionInfo {
        VersionInfo {
            version: self.version,
            concepts: self.concepts.len() as u32,
            top_concepts: self.top_concepts.len() as u32,
            deprecated: self.concepts.values().filter(|c| c.deprecated).count() as u32,
            created_at_ms: self.created_at_ms,
        }
    }
}
