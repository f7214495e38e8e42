//! SKOS integrity: a document is normalised (narrower folded into broader, related made
//! symmetric, duplicates dropped, top concepts derived when none are declared) and every
//! violation of the rules is collected, so that one answer lists them all.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use ensemble_protocol::taxonomy::{Concept, IntegrityRule, Label, TaxonomyDocument, Violation};

/// A checked document: normalised, with its violations (none means it may be stored) and
/// warnings.
#[derive(Debug)]
pub struct Checked {
    /// The normalised document (concepts sorted by id).
    pub doc: TaxonomyDocument,
    /// Every integrity violation.
    pub violations: Vec<Violation>,
    /// Things worth a look that do not stop an import.
    pub warnings: Vec<String>,
}

/// True for an id Ensemble can store and export: an absolute IRI, or a relative reference that
/// does not start with `/`, `.`, `#` or `?` (kept as written through RDF round trips).
pub fn valid_id(id: &str) -> bool {
    let forbidden = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
    };
    if id.is_empty() || id.chars().any(forbidden) {
        return false;
    }
    let scheme_end = id.find(':');
    let path_start = id.find(['/', '?', '#']);
    if let Some(end) = scheme_end
        && path_start.is_none_or(|p| end < p)
    {
        let scheme = &id[..end];
        let mut chars = scheme.chars();
        return chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    }
    !id.starts_with(['/', '.', '#', '?']) && !id.contains("/.")
}

fn short_list(ids: &[String]) -> String {
    let shown: Vec<String> = ids.iter().take(8).map(|i| format!("`{i}`")).collect();
    if ids.len() > 8 {
        format!("{} and {} more", shown.join(", "), ids.len() - 8)
    } else {
        shown.join(", ")
    }
}

fn dedup_labels(labels: &mut Vec<Label>, dropped_empty: &mut usize) {
    let before = labels.len();
    labels.retain(|l| !l.value.trim().is_empty());
    *dropped_empty += before - labels.len();
    let mut seen = HashSet::new();
    labels.retain(|l| seen.insert((l.lang.to_ascii_lowercase(), l.value.clone())));
}

fn dedup(list: &mut Vec<String>) {
    list.sort();
    list.dedup();
}

/// Normalises `doc` and collects every violation of the integrity rules.
pub fn check(mut doc: TaxonomyDocument) -> Checked {
    let mut violations = Vec::new();
    let mut warnings = Vec::new();
    let mut dropped_empty = 0usize;

    // Ids: valid and unique.
    let mut by_id: BTreeMap<String, Concept> = BTreeMap::new();
    for mut c in std::mem::take(&mut doc.concepts) {
        if !valid_id(&c.id) {
            violations.push(Violation {
                rule: IntegrityRule::InvalidId,
                concepts: vec![c.id.clone()],
                message: format!(
                    "concept id {:?} is not usable: give each concept an IRI (e.g. \
                     `http://example.org/topic/1`) or a simple name of letters, digits and \
                     `-._~` (blank nodes have no stable id)",
                    c.id
                ),
            });
            continue;
        }
        for labels in [
            &mut c.pref_labels,
            &mut c.alt_labels,
            &mut c.hidden_labels,
            &mut c.definitions,
            &mut c.scope_notes,
        ] {
            dedup_labels(labels, &mut dropped_empty);
        }
        if by_id.contains_key(&c.id) {
            violations.push(Violation {
                rule: IntegrityRule::DuplicateConcept,
                concepts: vec![c.id.clone()],
                message: format!(
                    "concept `{}` is defined twice: merge the two definitions into one",
                    c.id
                ),
            });
            continue;
        }
        by_id.insert(c.id.clone(), c);
    }
    if dropped_empty > 0 {
        warnings.push(format!(
            "{dropped_empty} empty labels or notes were dropped"
        ));
    }

    // Relations: known targets; narrower folded into broader; related made symmetric.
    let ids: BTreeSet<String> = by_id.keys().cloned().collect();
    let mut unknown: BTreeMap<(String, &'static str), Vec<String>> = BTreeMap::new();
    let mut extra_broader: Vec<(String, String)> = Vec::new();
    let mut extra_related: Vec<(String, String)> = Vec::new();
    for c in by_id.values_mut() {
        let id = c.id.clone();
        let mut keep = |list: &mut Vec<String>, what: &'static str| {
            list.retain(|t| {
                let known = ids.contains(t);
                if !known {
                    unknown
                        .entry((id.clone(), what))
                        .or_default()
                        .push(t.clone());
                }
                known
            });
            dedup(list);
        };
        keep(&mut c.broader, "broader");
        keep(&mut c.narrower, "narrower");
        keep(&mut c.related, "related");
        keep(&mut c.replaced_by, "replaced_by");
        for n in std::mem::take(&mut c.narrower) {
            extra_broader.push((n, id.clone()));
        }
        if c.related.contains(&id) {
            c.related.retain(|r| r != &id);
            violations.push(Violation {
                rule: IntegrityRule::RelatedToSelf,
                concepts: vec![id.clone()],
                message: format!("concept `{id}` is related to itself: remove that statement"),
            });
        }
        for r in &c.related {
            extra_related.push((r.clone(), id.clone()));
        }
        c.replaced_by.retain(|r| r != &id);
        if !c.replaced_by.is_empty() {
            c.deprecated = true;
        }
        for list in [
            &mut c.exact_match,
            &mut c.close_match,
            &mut c.broad_match,
            &mut c.narrow_match,
            &mut c.related_match,
            &mut c.notations,
        ] {
            dedup(list);
        }
    }
    for (child, parent) in extra_broader {
        if let Some(c) = by_id.get_mut(&child) {
            c.broader.push(parent);
            dedup(&mut c.broader);
        }
    }
    for (a, b) in extra_related {
        if let Some(c) = by_id.get_mut(&a) {
            c.related.push(b);
            dedup(&mut c.related);
        }
    }
    let mut tops = std::mem::take(&mut doc.top_concepts);
    tops.retain(|t| {
        let known = ids.contains(t);
        if !known {
            unknown
                .entry(("(scheme)".to_string(), "top concept"))
                .or_default()
                .push(t.clone());
        }
        known
    });
    dedup(&mut tops);
    for ((from, what), targets) in unknown {
        let mut concepts = vec![from.clone()];
        concepts.extend(targets.iter().cloned());
        let subject = if from == "(scheme)" {
            "the scheme".to_string()
        } else {
            format!("concept `{from}`")
        };
        violations.push(Violation {
            rule: IntegrityRule::UnknownConcept,
            concepts,
            message: format!(
                "{subject} names {} as {what}, which the scheme does not define: add the \
                 concept or remove the reference",
                short_list(&targets)
            ),
        });
    }

    // Labels.
    for c in by_id.values() {
        label_violations(c, &mut violations);
    }

    // Hierarchy: no cycles; related disjoint from broaderTransitive.
    let order: Vec<&String> = by_id.keys().collect();
    let index: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let parents: Vec<Vec<usize>> = by_id
        .values()
        .map(|c| {
            c.broader
                .iter()
                .filter_map(|b| index.get(b.as_str()).copied())
                .collect()
        })
        .collect();
    for mut comp in cycles(&parents) {
        comp.sort();
        let names: Vec<String> = comp.iter().map(|&i| order[i].clone()).collect();
        violations.push(Violation {
            rule: IntegrityRule::BroaderCycle,
            message: format!(
                "{} form a broader cycle (a concept would be its own ancestor): remove one of \
                 the broader or narrower statements between them",
                short_list(&names)
            ),
            concepts: names,
        });
    }
    for (i, c) in by_id.values().enumerate() {
        for r in &c.related {
            let Some(&j) = index.get(r.as_str()) else {
                continue;
            };
            if i < j && (reaches(&parents, i, j) || reaches(&parents, j, i)) {
                violations.push(Violation {
                    rule: IntegrityRule::RelatedIsAncestor,
                    concepts: vec![c.id.clone(), r.clone()],
                    message: format!(
                        "`{}` and `{r}` are related but one is an ancestor of the other: \
                         remove the related statement (hierarchy already links them)",
                        c.id
                    ),
                });
            }
        }
    }

    // Top concepts: declared, else every concept without broader.
    if tops.is_empty() {
        tops = by_id
            .values()
            .filter(|c| c.broader.is_empty())
            .map(|c| c.id.clone())
            .collect();
    }
    let unlabelled: Vec<String> = by_id
        .values()
        .filter(|c| c.pref_labels.is_empty())
        .map(|c| c.id.clone())
        .collect();
    if !unlabelled.is_empty() {
        warnings.push(format!(
            "{} concepts have no prefLabel ({}); they are found by id only",
            unlabelled.len(),
            short_list(&unlabelled)
        ));
    }
    if by_id.is_empty() {
        warnings.push("the document holds no concepts".into());
    }
    violations.sort_by(|a, b| {
        a.rule
            .cmp(&b.rule)
            .then_with(|| a.concepts.cmp(&b.concepts))
    });
    doc.top_concepts = tops;
    doc.concepts = by_id.into_values().collect();
    Checked {
        doc,
        violations,
        warnings,
    }
}

fn label_violations(c: &Concept, out: &mut Vec<Violation>) {
    let mut pref: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for l in &c.pref_labels {
        pref.entry(l.lang.to_ascii_lowercase())
            .or_default()
            .push(&l.value);
    }
    for (lang, values) in &pref {
        if values.len() > 1 {
            out.push(Violation {
                rule: IntegrityRule::PrefLabelPerLanguage,
                concepts: vec![c.id.clone()],
                message: format!(
                    "concept `{}` has {} prefLabels in language {:?} ({}): keep one and make \
                     the others altLabels",
                    c.id,
                    values.len(),
                    lang,
                    values
                        .iter()
                        .map(|v| format!("{v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    let kinds = [
        ("prefLabel", &c.pref_labels),
        ("altLabel", &c.alt_labels),
        ("hiddenLabel", &c.hidden_labels),
    ];
    for (a, (ka, la)) in kinds.iter().enumerate() {
        for (kb, lb) in kinds.iter().skip(a + 1) {
            for x in la.iter() {
                let clash = lb
                    .iter()
                    .any(|y| y.value == x.value && y.lang.eq_ignore_ascii_case(&x.lang));
                if clash {
                    out.push(Violation {
                        rule: IntegrityRule::LabelsDisjoint,
                        concepts: vec![c.id.clone()],
                        message: format!(
                            "concept `{}` has {:?}@{} as both {ka} and {kb}: keep it as one \
                             kind only",
                            c.id,
                            x.value,
                            if x.lang.is_empty() { "none" } else { &x.lang }
                        ),
                    });
                }
            }
        }
    }
}

/// Whether `to` is reachable from `from` along `edges` (broader: `to` is an ancestor).
fn reaches(edges: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = HashSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        for &n in &edges[at] {
            if n == to {
                return true;
            }
            if seen.insert(n) {
                queue.push_back(n);
            }
        }
    }
    false
}

/// The strongly connected components of `edges` that hold a cycle (Tarjan, iterative so that
/// deep hierarchies cannot overflow the stack).
fn cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let (mut index, mut low, mut on_stack) = (vec![UNSEEN; n], vec![0; n], vec![false; n]);
    let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0usize);
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        let mut calls = vec![(root, 0usize)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(v, i)) = calls.last() {
            if let Some(&w) = edges[v].get(i) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 || edges[v].contains(&v) {
                    out.push(comp);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_iris_or_simple_names() {
        for ok in [
            "http://x.org/a#b",
            "urn:x:1",
            "10002944.10011122",
            "a-b_c",
            "sport/foot",
        ] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "_:b0", "a b", "/abs", "../x", "a<b", "1http:x"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn tarjan_finds_self_loops_and_longer_cycles() {
        let edges = vec![vec![1], vec![2], vec![0], vec![3], vec![]];
        let mut found: Vec<Vec<usize>> = cycles(&edges)
            .into_iter()
            .map(|mut c| {
                c.sort();
                c
            })
            .collect();
        found.sort();
        assert_eq!(found, vec![vec![0, 1, 2], vec![3]]);
    }
}
