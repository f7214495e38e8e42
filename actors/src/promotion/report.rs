//! Hand-off reports: checking what a report says, and rendering reports and promotion requests
//! as Markdown a person reads.
//!
//! [`check_content`] validates a report's content in two layers and lists every problem at
//! once: first the JSON Schema generated from [`ReportContent`] (types, lengths, ranges, enum
//! values, unknown fields), then, when that passes, the rules a schema cannot say (unique names,
//! a `done` component at 100%, well-formed evidence references, …).
//!
//! [`handoff_markdown`] and [`promotion_markdown`] render a report revision and a promotion
//! request; timestamps are shown in UTC.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use ensemble_protocol::promotion::{
    ComponentStatus, Decision, Evidence, EvidenceKind, GateResult, Handoff, PromotionInfo,
    ReportContent, SignOff,
};
use jsonschema::error::ValidationErrorKind;
use serde::Deserialize as _;
use serde_json::Value;

// ---- checking --------------------------------------------------------------------------------

/// The JSON Schema of [`ReportContent`] and its compiled validator, built once.
struct ReportSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

static REPORT_SCHEMA: LazyLock<ReportSchema> = LazyLock::new(|| {
    let schema = serde_json::to_value(schemars::schema_for!(ReportContent))
        .expect("the JSON Schema of ReportContent serializes");
    let validator =
        jsonschema::draft202012::new(&schema).expect("the JSON Schema of ReportContent compiles");
    ReportSchema { schema, validator }
});

/// Checks a report's content, given as JSON (the object form of [`ReportContent`]).
///
/// Returns the content when it has no problems, and otherwise every problem found, each one
/// naming where it is (a path such as `components/2/percent_complete`, or `(the report)`) and
/// what is wrong. The semantic rules (unique component and metric names, a `done` component at
/// 100%, well-formed evidence references, finite metric values, a non-blank title) are checked
/// only once the content satisfies the schema.
pub fn check_content(content: &Value) -> Result<ReportContent, Vec<String>> {
    let report_schema = &*REPORT_SCHEMA;
    let problems: Vec<String> = report_schema
        .validator
        .iter_errors(content)
        .map(|error| schema_problem(&report_schema.schema, &error))
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    // The schema cannot rule out everything serde refuses (e.g. `50.0` is an integer to JSON
    // Schema but not to a `u8`).
    let report =
        ReportContent::deserialize(content).map_err(|e| vec![format!("{}: {e}", place(""))])?;
    let problems = semantic_problems(&report);
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(problems)
    }
}

/// Where a problem is: a JSON pointer without its leading slash, or the report itself.
fn place(pointer: &str) -> String {
    match pointer.strip_prefix('/') {
        Some(path) if !path.is_empty() => format!("`{path}`"),
        _ => "(the report)".to_owned(),
    }
}

/// One schema violation as a problem line.
fn schema_problem(schema: &Value, error: &jsonschema::ValidationError<'_>) -> String {
    let what = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unknown_fields(schema, error.schema_path().as_str(), unexpected)
        }
        ValidationErrorKind::OneOfNotValid { context } => match accepted_constants(context) {
            Some(accepted) => format!("{} is not one of {accepted}", error.instance()),
            None => error.to_string(),
        },
        _ => error.to_string(),
    };
    format!("{}: {what}", place(error.instance_path().as_str()))
}

/// "unknown field `x` (accepted fields: …)", the accepted fields read from the properties of
/// the schema object whose `additionalProperties` keyword failed.
fn unknown_fields(schema: &Value, keyword_path: &str, unexpected: &[String]) -> String {
    let plural = if unexpected.len() == 1 { "" } else { "s" };
    let mut message = format!("unknown field{plural} {}", quoted_list(unexpected));
    let accepted = keyword_path
        .strip_suffix("/additionalProperties")
        .and_then(|object_path| schema.pointer(object_path))
        .and_then(|object| object.get("properties"))
        .and_then(Value::as_object);
    if let Some(properties) = accepted {
        let _ = write!(
            message,
            " (accepted fields: {})",
            quoted_list(properties.keys())
        );
    }
    message
}

/// The values a `oneOf` of constants (a unit enum's schema) accepts, when every branch failed
/// on its `const`.
fn accepted_constants(branches: &[Vec<jsonschema::ValidationError<'static>>]) -> Option<String> {
    let constants = branches
        .iter()
        .map(|errors| {
            errors.iter().find_map(|error| match error.kind() {
                ValidationErrorKind::Constant { expected_value } => {
                    Some(expected_value.to_string())
                }
                _ => None,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    (!constants.is_empty()).then(|| constants.join(", "))
}

/// `` `a`, `b`, `c` ``.
fn quoted_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|item| format!("`{}`", item.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rules the schema cannot express, all of them.
fn semantic_problems(report: &ReportContent) -> Vec<String> {
    let mut problems = Vec::new();
    if report.title.trim().is_empty() {
        problems.push("`title`: the title is blank".to_owned());
    }
    duplicate_names(
        "components",
        "component",
        report.components.iter().map(|c| c.name.as_str()),
        &mut problems,
    );
    duplicate_names(
        "metrics",
        "metric",
        report.metrics.iter().map(|m| m.name.as_str()),
        &mut problems,
    );
    for (i, component) in report.components.iter().enumerate() {
        if component.status == ComponentStatus::Done && component.percent_complete < 100 {
            problems.push(format!(
                "`components/{i}/percent_complete`: component `{}` is done but {}% complete",
                component.name, component.percent_complete
            ));
        }
    }
    for (i, metric) in report.metrics.iter().enumerate() {
        if !metric.value.is_finite() {
            problems.push(format!(
                "`metrics/{i}/value`: the value of metric `{}` is not a finite number",
                metric.name
            ));
        }
        if metric.target.is_some_and(|target| !target.is_finite()) {
            problems.push(format!(
                "`metrics/{i}/target`: the target of metric `{}` is not a finite number",
                metric.name
            ));
        }
    }
    for (i, evidence) in report.evidence.iter().enumerate() {
        if let Some(problem) = evidence_problem(evidence) {
            problems.push(format!("`evidence/{i}/reference`: {problem}"));
        }
    }
    problems
}

/// One problem per name used more than once, in the order the names first appear.
fn duplicate_names<'a>(
    section: &str,
    noun: &str,
    names: impl Iterator<Item = &'a str>,
    problems: &mut Vec<String>,
) {
    let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut repeated = Vec::new();
    for (i, name) in names.enumerate() {
        let at = positions.entry(name).or_default();
        if at.len() == 1 {
            repeated.push(name);
        }
        at.push(i);
    }
    for name in repeated {
        let at = &positions[name];
        let indices = at
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        problems.push(format!(
            "`{section}`: {noun} name `{name}` is used {} times (items {indices})",
            at.len()
        ));
    }
}

/// What is wrong with an evidence reference for its kind, if anything.
fn evidence_problem(evidence: &Evidence) -> Option<String> {
    let reference = evidence.reference.as_str();
    match evidence.kind {
        EvidenceKind::Artifact => {
            let well_formed = reference.split_once('@').is_some_and(|(name, version)| {
                !name.trim().is_empty() && !version.trim().is_empty() && !version.contains('@')
            });
            (!well_formed).then(|| {
                format!("artifact reference `{reference}` is not of the form `name@version`")
            })
        }
        EvidenceKind::Link => {
            let is_http = reference.starts_with("http://") || reference.starts_with("https://");
            (!is_http)
                .then(|| format!("link `{reference}` does not start with `http://` or `https://`"))
        }
        EvidenceKind::WorkflowRun => reference
            .trim()
            .is_empty()
            .then(|| "the workflow run id is blank".to_owned()),
    }
}

// ---- rendering -------------------------------------------------------------------------------

/// Renders a report revision as Markdown: a header line, then the summary, components,
/// metrics, evidence, risks, findings (open blockers called out) and sign-offs. Empty sections
/// say "None.".
pub fn handoff_markdown(h: &Handoff) -> String {
    HandoffDoc(h).to_string()
}

/// Renders a promotion request as Markdown: what moves where, its facts, its gates and its
/// sign-offs.
pub fn promotion_markdown(p: &PromotionInfo) -> String {
    PromotionDoc(p).to_string()
}

/// A report revision as Markdown.
struct HandoffDoc<'a>(&'a Handoff);

impl fmt::Display for HandoffDoc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.0;
        let report = &h.content;
        writeln!(f, "# {}", OneLine(&report.title))?;
        writeln!(f)?;
        write!(f, "Report `{}`, revision {}", h.id, h.revision)?;
        if h.revision != h.latest_revision {
            write!(f, " of {}", h.latest_revision)?;
        }
        write!(
            f,
            " · {} · created by {} at {}",
            h.state,
            OneLine(&h.created_by),
            Utc(h.created_at_ms)
        )?;
        match h.submitted_at_ms {
            Some(at) => writeln!(f, " · submitted at {}", Utc(at))?,
            None => writeln!(f, " · not submitted")?,
        }

        section(f, "Summary")?;
        if report.summary.trim().is_empty() {
            writeln!(f, "None.")?;
        } else {
            writeln!(f, "{}", report.summary.trim_end())?;
        }

        section(f, "Components")?;
        table(
            f,
            ["Name", "Status", "% complete", "Owner", "Notes"],
            report.components.iter().map(|c| {
                [
                    c.name.clone(),
                    c.status.to_string(),
                    format!("{}%", c.percent_complete),
                    or_dash(c.owner.as_deref()),
                    or_dash(c.notes.as_deref()),
                ]
            }),
        )?;

        section(f, "Metrics")?;
        table(
            f,
            ["Name", "Value", "Target", "Unit", "Met?"],
            report.metrics.iter().map(|m| {
                let met = m.met().map(|met| if met { "yes" } else { "no" });
                [
                    m.name.clone(),
                    m.value.to_string(),
                    m.target.map_or_else(|| "—".to_owned(), |t| t.to_string()),
                    or_dash(m.unit.as_deref()),
                    or_dash(met),
                ]
            }),
        )?;

        section(f, "Evidence")?;
        if report.evidence.is_empty() {
            writeln!(f, "None.")?;
        }
        for evidence in &report.evidence {
            let reference = OneLine(&evidence.reference);
            match evidence.kind {
                EvidenceKind::Link => write!(f, "- link: <{reference}>")?,
                EvidenceKind::Artifact => write!(f, "- artifact: `{reference}`")?,
                EvidenceKind::WorkflowRun => write!(f, "- workflow run: `{reference}`")?,
            }
            match &evidence.note {
                Some(note) => writeln!(f, " — {}", OneLine(note))?,
                None => writeln!(f)?,
            }
        }

        section(f, "Risks")?;
        table(
            f,
            ["Severity", "Description", "Mitigation"],
            report.risks.iter().map(|r| {
                [
                    r.severity.to_string(),
                    r.description.clone(),
                    or_dash(r.mitigation.as_deref()),
                ]
            }),
        )?;

        section(f, "Findings")?;
        let blockers = report.open_blockers().count();
        if blockers > 0 {
            writeln!(f, "**{blockers} open blocker(s) block promotion.**")?;
            writeln!(f)?;
        }
        table(
            f,
            ["Severity", "Status", "Title", "Notes"],
            report.findings.iter().map(|finding| {
                [
                    finding.severity.to_string(),
                    if finding.open { "open" } else { "resolved" }.to_owned(),
                    finding.title.clone(),
                    or_dash(finding.notes.as_deref()),
                ]
            }),
        )?;

        section(f, "Sign-offs")?;
        table(
            f,
            ["Request", "Role", "By", "Decision", "At", "Comment"],
            h.signoffs.iter().flat_map(|(request, signoffs)| {
                signoffs.iter().map(move |s| {
                    let [role, by, decision, at, comment] = signoff_cells(s);
                    [request.clone(), role, by, decision, at, comment]
                })
            }),
        )
    }
}

/// A promotion request as Markdown.
struct PromotionDoc<'a>(&'a PromotionInfo);

impl fmt::Display for PromotionDoc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        writeln!(
            f,
            "# Promotion {}: {}@{} → {}",
            OneLine(&p.request_id),
            OneLine(&p.artifact),
            OneLine(&p.version),
            OneLine(&p.stage)
        )?;
        writeln!(f)?;
        writeln!(f, "- State: {}", p.state)?;
        writeln!(f, "- Pipeline: `{}`", OneLine(&p.pipeline))?;
        match &p.from_stage {
            Some(stage) => writeln!(f, "- From stage: {}", OneLine(stage))?,
            None => writeln!(f, "- From stage: none (first stage)")?,
        }
        writeln!(f, "- Digest: `{}`", OneLine(&p.digest))?;
        writeln!(
            f,
            "- Requested by {} at {}",
            OneLine(&p.requested_by),
            Utc(p.requested_at_ms)
        )?;
        writeln!(
            f,
            "- Hand-off: `{}` revision {}",
            OneLine(&p.handoff_id),
            p.handoff_revision
        )?;
        if let Some(run) = &p.workflow_run {
            writeln!(f, "- Workflow run: `{}`", OneLine(run))?;
        }
        match (&p.promoted_by, p.promoted_at_ms) {
            (Some(by), Some(at)) => writeln!(f, "- Promoted by {} at {}", OneLine(by), Utc(at))?,
            (Some(by), None) => writeln!(f, "- Promoted by {}", OneLine(by))?,
            (None, Some(at)) => writeln!(f, "- Promoted at {}", Utc(at))?,
            (None, None) => {}
        }
        if let Some(reason) = &p.reason {
            writeln!(f, "- Reason: {}", OneLine(reason))?;
        }

        section(f, "Gates")?;
        if p.gates.is_empty() {
            writeln!(f, "Not evaluated.")?;
        } else {
            table(
                f,
                ["Gate", "Passed", "Detail"],
                p.gates.iter().map(gate_cells),
            )?;
        }

        section(f, "Sign-offs")?;
        table(
            f,
            ["Role", "By", "Decision", "At", "Comment"],
            p.signoffs.iter().map(signoff_cells),
        )
    }
}

fn gate_cells(gate: &GateResult) -> [String; 3] {
    [
        gate.gate.clone(),
        if gate.passed { "yes" } else { "no" }.to_owned(),
        gate.detail.clone(),
    ]
}

fn signoff_cells(s: &SignOff) -> [String; 5] {
    let decision = match s.decision {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    };
    [
        s.role.clone(),
        s.by.clone(),
        decision.to_owned(),
        Utc(s.at_ms).to_string(),
        s.comment.clone(),
    ]
}

/// A `##` heading, with the blank lines around it.
fn section(f: &mut fmt::Formatter<'_>, title: &str) -> fmt::Result {
    write!(f, "\n## {title}\n\n")
}

/// A Markdown table with its cells escaped, or "None." when there are no rows.
fn table<const N: usize>(
    f: &mut fmt::Formatter<'_>,
    headers: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return writeln!(f, "None.");
    }
    writeln!(f, "| {} |", headers.join(" | "))?;
    writeln!(f, "|{}", "---|".repeat(N))?;
    for row in rows {
        f.write_char('|')?;
        for cell in &row {
            write!(f, " {} |", Cell(cell))?;
        }
        writeln!(f)?;
    }
    Ok(())
}

fn or_dash(text: Option<&str>) -> String {
    text.unwrap_or("—").to_owned()
}

/// Text inside a table cell: `|` escaped, line breaks as `<br>`.
struct Cell<'a>(&'a str);

impl fmt::Display for Cell<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '|' => f.write_str("\\|")?,
                '\r' => {
                    chars.next_if_eq(&'\n');
                    f.write_str("<br>")?;
                }
                '\n' => f.write_str("<br>")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Text on a heading or list line: line breaks become spaces.
struct OneLine<'a>(&'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = self.0.lines();
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for line in lines {
            f.write_char(' ')?;
            f.write_str(line)?;
        }
        Ok(())
    }
}

/// Unix milliseconds shown as `YYYY-MM-DD HH:MM:SS UTC`.
struct Utc(u64);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0 / 1000;
        let (year, month, day) = civil_from_days(seconds / 86_400);
        let second_of_day = seconds % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
            second_of_day / 3600,
            second_of_day % 3600 / 60,
            second_of_day % 60
        )
    }
}

/// The proleptic Gregorian `(year, month, day)` of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097; // [0, 146096]
    // [0, 399]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    // [0, 365], from March 1st
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ensemble_protocol::promotion::{Component, Finding, ReportState, RequestState, Severity};
    use serde_json::json;

    use super::*;

    fn full_report() -> Value {
        json!({
            "title": "Search service v2",
            "summary": "Rewrote the indexer.\nQueries are faster.",
            "components": [
                {"name": "api", "status": "done", "percent_complete": 100, "owner": "alice",
                 "notes": "uses a | pipe\nand a newline"},
                {"name": "indexer", "status": "in_progress", "percent_complete": 60}
            ],
            "metrics": [
                {"name": "p99 latency", "value": 180.5, "target": 200.5, "unit": "ms"},
                {"name": "recall", "value": 0.91, "target": 0.95},
                {"name": "docs indexed", "value": 1.5e6}
            ],
            "evidence": [
                {"kind": "artifact", "reference": "search-index@2.0.0", "note": "the build"},
                {"kind": "workflow_run", "reference": "run-42"},
                {"kind": "link", "reference": "https://ci.example/run/42"}
            ],
            "risks": [
                {"description": "reindex takes an hour", "severity": "medium",
                 "mitigation": "run it at night"}
            ],
            "findings": [
                {"title": "flaky test", "severity": "low", "open": false, "notes": "fixed"},
                {"title": "data loss on restart", "severity": "blocker", "open": true}
            ]
        })
    }

    fn assert_problems(problems: &[String], expected: &[&str]) {
        for needle in expected {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "no problem mentions {needle:?}; problems: {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "problems: {problems:#?}");
    }

    #[test]
    fn a_valid_full_report_passes_and_round_trips() {
        let json = full_report();
        let report = check_content(&json).expect("the full report is valid");
        assert_eq!(report.components.len(), 2);
        assert_eq!(report.open_blockers().count(), 1);
        assert_eq!(serde_json::to_value(&report).expect("serializes"), json);
    }

    #[test]
    fn a_minimal_report_passes() {
        let report = check_content(&json!({"title": "t"})).expect("only the title is required");
        assert_eq!(report.title, "t");
        assert!(report.components.is_empty());
    }

    #[test]
    fn every_schema_problem_is_listed() {
        let mut json = full_report();
        json["components"][1]["percent_complete"] = json!(140);
        json["components"][0]["colour"] = json!("blue");
        json["risks"][0]["severity"] = json!("urgent");
        json["metrics"][0]["value"] = json!("fast");
        let problems = check_content(&json).expect_err("the report is invalid");
        assert_problems(
            &problems,
            &[
                "`components/1/percent_complete`: 140 is greater than the maximum of 100",
                "`components/0`: unknown field `colour` (accepted fields: ",
                "`risks/0/severity`: \"urgent\" is not one of \"info\", \"low\", \"medium\", \
                 \"high\", \"critical\", \"blocker\"",
                "`metrics/0/value`: \"fast\" is not of type \"number\"",
            ],
        );
        let unknown = problems
            .iter()
            .find(|p| p.contains("colour"))
            .expect("listed above");
        for field in ["name", "status", "percent_complete", "owner", "notes"] {
            assert!(unknown.contains(&format!("`{field}`")), "{unknown}");
        }
    }

    #[test]
    fn root_problems_name_the_report() {
        let problems = check_content(&json!({"summary": "s", "extra": 1}))
            .expect_err("no title, unknown field");
        assert_problems(
            &problems,
            &[
                "(the report): \"title\" is a required property",
                "(the report): unknown field `extra`",
            ],
        );
        let problems = check_content(&json!([1, 2])).expect_err("not an object");
        assert_problems(
            &problems,
            &["(the report): [1,2] is not of type \"object\""],
        );
    }

    #[test]
    fn every_semantic_problem_is_listed() {
        let mut json = full_report();
        json["title"] = json!("   ");
        let components = json["components"].as_array_mut().expect("an array");
        components.push(json!({"name": "api", "status": "blocked", "percent_complete": 0}));
        components.push(json!({"name": "api", "status": "done", "percent_complete": 100}));
        components.push(json!({"name": "ui", "status": "done", "percent_complete": 40}));
        json["metrics"][2]["name"] = json!("recall");
        json["evidence"] = json!([
            {"kind": "artifact", "reference": "search-index"},
            {"kind": "artifact", "reference": "a@1@2"},
            {"kind": "link", "reference": "ftp://example/file"},
            {"kind": "workflow_run", "reference": "  "},
            {"kind": "link", "reference": "http://ok.example"}
        ]);
        let problems = check_content(&json).expect_err("the report is invalid");
        assert_problems(
            &problems,
            &[
                "`title`: the title is blank",
                "component name `api` is used 3 times (items 0, 2, 3)",
                "metric name `recall` is used 2 times (items 1, 2)",
                "`components/4/percent_complete`: component `ui` is done but 40% complete",
                "`evidence/0/reference`: artifact reference `search-index` is not of the form",
                "`evidence/1/reference`: artifact reference `a@1@2` is not of the form",
                "`evidence/2/reference`: link `ftp://example/file` does not start with",
                "`evidence/3/reference`: the workflow run id is blank",
            ],
        );
    }

    #[test]
    fn what_serde_refuses_after_the_schema_is_a_problem_too() {
        let json = json!({"title": "t", "components": [
            {"name": "a", "status": "done", "percent_complete": 50.0}
        ]});
        let problems = check_content(&json).expect_err("50.0 is not a u8");
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].starts_with("(the report): "), "{problems:#?}");
    }

    fn handoff(content: ReportContent) -> Handoff {
        let signoff = SignOff {
            role: "qa".into(),
            by: "bob".into(),
            decision: Decision::Approve,
            comment: "looks good".into(),
            at_ms: 1_700_000_000_000,
            revision: 2,
        };
        Handoff {
            id: "h-1".into(),
            revision: 2,
            latest_revision: 3,
            state: ReportState::Superseded,
            content,
            created_by: "alice".into(),
            created_at_ms: 0,
            submitted_at_ms: Some(1_700_000_000_000),
            requests: vec!["pr-7".into()],
            signoffs: BTreeMap::from([("pr-7".to_owned(), vec![signoff])]),
        }
    }

    #[test]
    fn the_report_markdown_has_every_section_and_escapes_cells() {
        let report = check_content(&full_report()).expect("valid");
        let md = handoff_markdown(&handoff(report));
        for expected in [
            "# Search service v2\n",
            "Report `h-1`, revision 2 of 3 · superseded · created by alice at \
             1970-01-01 00:00:00 UTC · submitted at 2023-11-14 22:13:20 UTC\n",
            "## Summary\n\nRewrote the indexer.\nQueries are faster.\n",
            "| Name | Status | % complete | Owner | Notes |\n|---|---|---|---|---|\n",
            "| api | done | 100% | alice | uses a \\| pipe<br>and a newline |\n",
            "| indexer | in progress | 60% | — | — |\n",
            "| p99 latency | 180.5 | 200.5 | ms | no |\n",
            "| recall | 0.91 | 0.95 | — | no |\n",
            "| docs indexed | 1500000 | — | — | — |\n",
            "- artifact: `search-index@2.0.0` — the build\n",
            "- workflow run: `run-42`\n",
            "- link: <https://ci.example/run/42>\n",
            "| medium | reindex takes an hour | run it at night |\n",
            "| low | resolved | flaky test | fixed |\n",
            "| blocker | open | data loss on restart | — |\n",
            "| pr-7 | qa | bob | approved | 2023-11-14 22:13:20 UTC | looks good |\n",
        ] {
            assert!(md.contains(expected), "missing {expected:?} in:\n{md}");
        }
    }

    #[test]
    fn empty_sections_say_none() {
        let mut h = handoff(ReportContent {
            title: "Empty".into(),
            ..ReportContent::default()
        });
        h.revision = 3;
        h.submitted_at_ms = None;
        h.signoffs.clear();
        let md = handoff_markdown(&h);
        assert!(md.contains("revision 3 · superseded"), "{md}");
        assert!(md.contains("· not submitted\n"), "{md}");
        for section in [
            "Summary",
            "Components",
            "Metrics",
            "Evidence",
            "Risks",
            "Findings",
            "Sign-offs",
        ] {
            assert!(
                md.contains(&format!("## {section}\n\nNone.\n")),
                "{section} in:\n{md}"
            );
        }
    }

    #[test]
    fn the_blocker_call_out_appears_exactly_when_a_blocker_is_open() {
        let finding = |severity, open| Finding {
            title: "f".into(),
            severity,
            open,
            notes: None,
        };
        let with = |findings| {
            handoff_markdown(&handoff(ReportContent {
                title: "t".into(),
                findings,
                ..ReportContent::default()
            }))
        };
        let call_out = "open blocker(s) block promotion.";

        let md = with(vec![
            finding(Severity::Blocker, true),
            finding(Severity::Blocker, true),
            finding(Severity::Blocker, false),
        ]);
        assert!(
            md.contains("## Findings\n\n**2 open blocker(s) block promotion.**\n\n| Severity |"),
            "{md}"
        );
        assert_eq!(md.matches(call_out).count(), 1);

        for findings in [
            vec![],
            vec![finding(Severity::Blocker, false)],
            vec![finding(Severity::Critical, true)],
        ] {
            let md = with(findings);
            assert!(!md.contains(call_out), "{md}");
        }
    }

    #[test]
    fn component_rows_follow_the_content() {
        let report = ReportContent {
            title: "t".into(),
            components: vec![Component {
                name: "a|b".into(),
                status: ComponentStatus::Blocked,
                percent_complete: 5,
                owner: Some("x\r\ny".into()),
                notes: None,
            }],
            ..ReportContent::default()
        };
        let md = handoff_markdown(&handoff(report));
        assert!(
            md.contains("| a\\|b | blocked | 5% | x<br>y | — |\n"),
            "{md}"
        );
    }

    fn promotion() -> PromotionInfo {
        PromotionInfo {
            request_id: "pr-7".into(),
            artifact: "search-index".into(),
            version: "2.0.0".into(),
            digest: "sha256:abc".into(),
            stage: "production".into(),
            from_stage: Some("staging".into()),
            pipeline: "default@1".into(),
            state: RequestState::Promoted,
            requested_by: "alice".into(),
            requested_at_ms: 0,
            handoff_id: "h-1".into(),
            handoff_revision: 2,
            signoffs: vec![SignOff {
                role: "sre".into(),
                by: "carol".into(),
                decision: Decision::Reject,
                comment: "no | way".into(),
                at_ms: 1_700_000_000_000,
                revision: 2,
            }],
            workflow_run: Some("run-9".into()),
            promoted_at_ms: Some(1_700_000_000_000),
            promoted_by: Some("dave".into()),
            reason: None,
            gates: vec![GateResult {
                gate: "soak".into(),
                passed: false,
                detail: "2h of 24h".into(),
            }],
        }
    }

    #[test]
    fn the_promotion_markdown_lists_facts_gates_and_signoffs() {
        let md = promotion_markdown(&promotion());
        for expected in [
            "# Promotion pr-7: search-index@2.0.0 → production\n",
            "- State: promoted\n",
            "- Pipeline: `default@1`\n",
            "- From stage: staging\n",
            "- Digest: `sha256:abc`\n",
            "- Requested by alice at 1970-01-01 00:00:00 UTC\n",
            "- Hand-off: `h-1` revision 2\n",
            "- Workflow run: `run-9`\n",
            "- Promoted by dave at 2023-11-14 22:13:20 UTC\n",
            "## Gates\n\n| Gate | Passed | Detail |\n|---|---|---|\n| soak | no | 2h of 24h |\n",
            "| sre | carol | rejected | 2023-11-14 22:13:20 UTC | no \\| way |\n",
        ] {
            assert!(md.contains(expected), "missing {expected:?} in:\n{md}");
        }
        assert!(!md.contains("Reason"), "{md}");

        let mut p = promotion();
        p.gates.clear();
        p.signoffs.clear();
        p.from_stage = None;
        p.reason = Some("superseded by pr-8".into());
        let md = promotion_markdown(&p);
        assert!(md.contains("## Gates\n\nNot evaluated.\n"), "{md}");
        assert!(md.contains("## Sign-offs\n\nNone.\n"), "{md}");
        assert!(md.contains("- From stage: none (first stage)\n"), "{md}");
        assert!(md.contains("- Reason: superseded by pr-8\n"), "{md}");
    }

    #[test]
    fn timestamps_render_in_utc() {
        for (ms, expected) in [
            (0, "1970-01-01 00:00:00 UTC"),
            (999, "1970-01-01 00:00:00 UTC"),
            (1_700_000_000_000, "2023-11-14 22:13:20 UTC"),
            (951_782_400_000, "2000-02-29 00:00:00 UTC"),
            (951_868_799_000, "2000-02-29 23:59:59 UTC"),
            (253_402_300_799_000, "9999-12-31 23:59:59 UTC"),
        ] {
            assert_eq!(Utc(ms).to_string(), expected, "{ms}");
        }
    }
}
