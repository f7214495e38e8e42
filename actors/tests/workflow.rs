//! The workflow engine with real actors (execution engine included) under a real supervisor.

mod common;

use std::sync::Arc;

use common::Tools;
use ensemble_actors::execution::{ExecArgs, ExecConfig, ExecMsg, ExecutionActor};
use ensemble_actors::invoke::ToolInvoker;
use ensemble_actors::store::Store;
use ensemble_actors::workflow::{WorkflowActor, WorkflowArgs, WorkflowConfig, WorkflowMsg};
use ensemble_protocol::run::{
    RunError, RunInfo, RunRef, RunRequest, RunState, StepState, ValidateWorkflowRequest,
};
use ensemble_protocol::workflow::{Definition, Problem};
use ensemble_supervision::{ActorSlot, CancellationToken, ChildSpec, Supervisor, SupervisorSpec};
use serde_json::{Value, json};

struct Engines {
    workflow: ActorSlot<WorkflowMsg>,
    _exec: ActorSlot<ExecMsg>,
    sup: ractor::ActorRef<ensemble_supervision::SupervisorMsg>,
}

async fn engines(tools: &Tools, store: Store, durable: bool) -> Engines {
    let exec = ActorSlot::new("execution");
    let workflow = ActorSlot::new("workflow");
    let invoker: Arc<dyn ToolInvoker> = Arc::new(tools.clone());
    let ea = ExecArgs {
        store: store.clone(),
        invoker: invoker.clone(),
        config: ExecConfig {
            max_concurrent: 64,
            ..ExecConfig::default()
        },
    };
    let wa = WorkflowArgs {
        observer: None,
        store,
        exec: exec.clone(),
        invoker,
        config: WorkflowConfig {
            durable,
            ..WorkflowConfig::default()
        },
    };
    let spec = SupervisorSpec::new("engines")
        .child(ChildSpec::actor(&exec, move || {
            (ExecutionActor, ea.clone())
        }))
        .child(ChildSpec::actor(&workflow, move || {
            (WorkflowActor, wa.clone())
        }));
    let (sup, _) = Supervisor::start(spec).await.expect("engines start");
    Engines {
        workflow,
        _exec: exec,
        sup,
    }
}

fn def(steps: Value) -> Definition {
    serde_json::from_value(json!({ "steps": steps })).expect("a definition")
}

async fn run(e: &Engines, req: RunRequest) -> Result<RunInfo, RunError> {
    e.workflow
        .ask(|r| WorkflowMsg::Run(req, CancellationToken::new(), r))
        .await
        .expect("engine alive")
}

async fn run_and_wait(e: &Engines, d: Definition, params: Value) -> RunInfo {
    let mut req = RunRequest::of(d, params.as_object().cloned().unwrap_or_default());
    req.wait = true;
    run(e, req).await.expect("the run is accepted")
}

async fn status(e: &Engines, id: &str) -> RunInfo {
    e.workflow
        .ask(|r| {
            WorkflowMsg::Status(
                RunRef {
                    run_id: id.to_string(),
                },
                CancellationToken::new(),
                r,
            )
        })
        .await
        .unwrap()
        .unwrap()
}

/// Polls until the run has ended.
async fn ended(e: &Engines, id: &str) -> RunInfo {
    for _ in 0..2500 {
        let info = status(e, id).await;
        if info.state.is_final() {
            return info;
        }
        tokio::time::sleep(std::time::Duration::from_millis(4)).await;
    }
    panic!("run {id} did not end: {:?}", status(e, id).await);
}

fn step<'a>(info: &'a RunInfo, id: &str) -> &'a ensemble_protocol::run::StepInfo {
    info.steps.iter().find(|s| s.id == id).expect("step exists")
}

#[tokio::test]
async fn validation_reports_every_problem_and_a_bad_run_is_refused() {
    let tools = Tools::new();
    let e = engines(&tools, Store::temporary().unwrap(), false).await;
    let bad = def(json!([
        {"id": "a", "tool": "record", "depends_on": ["c"]},
        {"id": "b", "tool": "nope", "depends_on": ["a"]},
        {"id": "c", "tool": "record", "depends_on": ["b"]},
        {"id": "e", "tool": "record"},
        {"id": "e", "tool": "record"},
        {"id": "d", "tool": "record", "depends_on": ["ghost"],
         "arguments": {"x": "${steps.zzz.output.v}", "y": "${params.missing}"}},
    ]));
    let answer = e
        .workflow
        .ask(|r| {
            WorkflowMsg::Validate(
                ValidateWorkflowRequest {
                    definition: bad.clone(),
                    params: Default::default(),
                },
                CancellationToken::new(),
                r,
            )
        })
        .await
        .unwrap()
        .unwrap();
    assert!(!answer.valid);
    let kinds: Vec<&str> = answer
        .problems
        .iter()
        .map(|p| match p {
            Problem::DuplicateId { .. } => "duplicate",
            Problem::UnknownTool { .. } => "tool",
            Problem::UnknownDependency { .. } => "dependency",
            Problem::UnknownReference { .. } => "reference",
            Problem::Cycle { .. } => "cycle",
            Problem::InvalidId { .. } => "id",
            Problem::TooManySteps { .. } => "size",
        })
        .collect();
    for k in ["duplicate", "tool", "dependency", "reference", "cycle"] {
        assert!(kinds.contains(&k), "{k} missing from {:?}", answer.problems);
    }
    assert_eq!(kinds.iter().filter(|k| **k == "reference").count(), 2);
    let refused = run(&e, RunRequest::of(bad, Default::default()))
        .await
        .unwrap_err();
    assert!(matches!(refused, RunError::Invalid(ref p) if p.len() == answer.problems.len()));
    assert!(tools.order().is_empty(), "nothing ran");
}

#[tokio::test]
async fn a_diamond_runs_its_middle_in_parallel_and_passes_outputs_on() {
    let tools = Tools::new();
    let e = engines(&tools, Store::temporary().unwrap(), false).await;
    let info = run_and_wait(
        &e,
        def(json!([
            {"id": "a", "tool": "record", "arguments": {"label": "${params.first}"}},
            {"id": "b", "tool": "hold", "depends_on": ["a"], "arguments": {"label": "b", "ms": 60}},
            {"id": "c", "tool": "hold", "depends_on": ["a"], "arguments": {"label": "c", "ms": 60}},
            {"id": "d", "tool": "noop", "depends_on": ["b", "c"],
             "arguments": {"from": "${steps.b.output.label}", "n": "${params.n}",
                           "text": "after ${steps.a.output.label}"}},
        ])),
        json!({"first": "a", "n": 3}),
    )
    .await;
    assert_eq!(info.state, RunState::Completed);
    assert_eq!(tools.order()[0], "a");
    assert_eq!(tools.max_in_flight(), 2, "b and c ran at once");
    // Whole-string references keep their JSON type; embedded ones are spliced as text.
    assert_eq!(
        step(&info, "d").output,
        Some(json!({"ok": true, "args": {"from": "b", "n": 3, "text": "after a"}}))
    );
    assert_eq!(info.counts["completed"], 4);
}

#[tokio::test]
async fn a_wide_dag_runs_at_the_run_s_parallel_limit() {
    let tools = Tools::new();
    let e = engines(&tools, Store::temporary().unwrap(), false).await;
    let steps: Vec<Value> = (0..20)
        .map(|i| json!({"id": format!("s{i}"), "tool": "hold", "arguments": {"label": i.to_string(), "ms": 40}}))
        .collect();
    let mut req = RunRequest::of(def(Value::Array(steps)), Default::default());
    req.wait = true;
    req.max_parallel = Some(5);
    let info = run(&e, req).await.unwrap();
    assert_eq!(info.state, RunState::Completed);
    assert_eq!(info.counts["completed"], 20);
    assert_eq!(tools.max_in_flight(), 5);
}

#[tokio::test]
async fn a_failure_skips_exactly_its_dependents() {
    let tools = Tools::new();
    let e = engines(&tools, Store::temporary().unwrap(), false).await;
    let info = run_and_wait(
        &e,
        def(json!([
            {"id": "a", "tool": "record", "arguments": {"label": "a"}},
            {"id": "b", "tool": "fail", "depends_on": ["a"], "arguments": {"label": "b"}},
            {"id": "c", "tool": "record", "depends_on": ["b"], "arguments": {"label": "c"}},
            {"id": "d", "tool": "record", "depends_on": ["a"], "arguments": {"label": "d"}},
            {"id": "e", "tool": "record", "depends_on": ["b", "d"], "arguments": {"label": "e"}},
            {"id": "f", "tool": "fail", "continue_on_error": true, "arguments": {"label": "f"}},
            {"id": "g", "tool": "record", "depends_on": ["f"], "arguments": {"label": "g"}},
            {"id": "h", "tool": "record", "depends_on": ["c"], "arguments": {"label": "h"}},
        ])),
        json!({}),
    )
    .await;
    assert_eq!(info.state, RunState::Failed);
    let states: Vec<(&str, StepState)> = info
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.state))
        .collect();
    assert_eq!(
        states,
        [
            ("a", StepState::Completed),
            ("b", StepState::Failed),
            ("c", StepState::Skipped),
            ("d", StepState::Completed),
            ("e", StepState::Skipped),
            ("f", StepState::Failed),
            ("g", StepState::Completed),
            ("h", StepState::Skipped),
        ]
    );
    assert!(
        step(&info, "b")
            .error
            .as_deref()
            .unwrap()
            .contains("b failed")
    );
    assert!(step(&info, "c").error.as_deref().unwrap().contains("`b`"));
    for skipped in ["c", "e", "h"] {
        assert_eq!(tools.runs(skipped), 0);
    }
}

#[tokio::test]
async fn a_step_is_retried_by_its_policy() {
    let tools = Tools::new();
    let e = engines(&tools, Store::temporary().unwrap(), false).await;
    let info = run_and_wait(
        &e,
        def(json!([
            {"id": "flaky", "tool": "fail", "arguments": {"label": "flaky", "times": 2},
             "retry": {"max_attempts": 3, "backoff_ms": 1}},
            {"id": "never", "tool": "fail", "arguments": {"label": "never"},
             "retry": {"max_attempts": 2}},
        ])),
        json!({}),
    )
    .await;
    assert_eq!(step(&info, "flaky").state, StepState::Completed);
    assert_eq!(step(&info, "flaky").attempts, 3);
    assert_eq!(step(&info, "never").state, StepState::Failed);
    assert_eq!(tools.runs("never"), 2);
}

#[tokio::test]
async fn cancelling_a_run_stops_its_running_steps() {
    let tools = Tools::new();
    let e = engines(&tools, Store::temporary().unwrap(), false).await;
    let started = run(
        &e,
        RunRequest::of(
            def(json!([
                {"id": "long", "tool": "until_cancelled", "arguments": {"label": "long"}},
                {"id": "next", "tool": "record", "depends_on": ["long"], "arguments": {"label": "next"}},
            ])),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(started.state, RunState::Running);
    tools.started(1).await;
    let info = e
        .workflow
        .ask(|r| {
            WorkflowMsg::Cancel(
                RunRef {
                    run_id: started.run_id.clone(),
                },
                CancellationToken::new(),
                r,
            )
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.state, RunState::Cancelled);
    tools.started(2).await;
    assert_eq!(tools.order(), ["long", "stopped:long"]);
    assert_eq!(tools.runs("next"), 0);
}

/// Kills the workflow actor (no `post_stop`, as in a crash); its supervisor starts a new one,
/// which resumes from the journal.
async fn crash_workflow_actor(e: &Engines) {
    let old = e.workflow.get().unwrap();
    let generation = e.workflow.generation().unwrap();
    old.kill();
    e.workflow.next_generation(generation).await;
}

/// A durable engine pair on `dir` and a run of `steps` started on it (not waited for).
async fn durable_run(tools: &Tools, dir: &std::path::Path, steps: Value) -> (Engines, RunInfo) {
    let e = engines(tools, Store::open(dir).unwrap(), true).await;
    let started = run(&e, RunRequest::of(def(steps), Default::default()))
        .await
        .unwrap();
    (e, started)
}

#[tokio::test]
async fn a_crashed_engine_resumes_without_repeating_finished_steps() {
    let dir = tempfile::tempdir().unwrap();
    let tools = Tools::new();
    let (e, started) = durable_run(
        &tools,
        dir.path(),
        json!([
            {"id": "a", "tool": "record", "arguments": {"label": "a"}},
            {"id": "b", "tool": "gate", "depends_on": ["a"], "arguments": {"label": "b"}},
            {"id": "c", "tool": "record", "depends_on": ["b"], "arguments": {"label": "c"}},
        ]),
    )
    .await;
    tools.started(2).await;
    crash_workflow_actor(&e).await;
    // The resumed run starts `b` again (idempotent); `a` is in the journal.
    tools.started(3).await;
    tools.open_gate();
    let info = ended(&e, &started.run_id).await;
    assert_eq!(info.state, RunState::Completed);
    assert_eq!(
        (tools.runs("a"), tools.runs("b"), tools.runs("c")),
        (1, 2, 1)
    );
    assert_eq!(step(&info, "a").output, Some(json!({"label": "a"})));
    drop(e.sup);
}

#[tokio::test]
async fn a_non_idempotent_step_that_was_running_is_reported_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let tools = Tools::new();
    let (e, started) = durable_run(
        &tools,
        dir.path(),
        json!([
            {"id": "x", "tool": "record", "arguments": {"label": "x"}},
            {"id": "y", "tool": "once", "depends_on": ["x"], "arguments": {"label": "y"}},
            {"id": "z", "tool": "record", "depends_on": ["y"], "arguments": {"label": "z"}},
            {"id": "w", "tool": "record", "depends_on": ["x"], "arguments": {"label": "w"}},
        ]),
    )
    .await;
    tools.started(3).await;
    crash_workflow_actor(&e).await;
    let info = ended(&e, &started.run_id).await;
    assert_eq!(info.state, RunState::Interrupted);
    assert_eq!(step(&info, "y").state, StepState::Interrupted);
    assert!(
        step(&info, "y")
            .error
            .as_deref()
            .unwrap()
            .contains("not idempotent")
    );
    assert_eq!(step(&info, "z").state, StepState::Skipped);
    assert_eq!(step(&info, "w").state, StepState::Completed);
    assert_eq!(
        (tools.runs("x"), tools.runs("y"), tools.runs("z")),
        (1, 1, 0)
    );
}

async fn ask<T: Send + 'static>(
    e: &Engines,
    make: impl FnOnce(ractor::RpcReplyPort<Result<T, RunError>>) -> WorkflowMsg,
) -> Result<T, RunError> {
    e.workflow.ask(make).await.expect("engine alive")
}

#[tokio::test]
async fn templates_register_instantiate_list_every_parameter_problem_and_run() {
    use ensemble_protocol::run::{
        TemplateGetRequest, TemplateInstantiateRequest, TemplateRegisterRequest,
    };
    let dir = tempfile::tempdir().unwrap();
    let tools = Tools::new();
    let e = engines(&tools, Store::open(dir.path()).unwrap(), true).await;
    let fetch: ensemble_protocol::template::Template = serde_json::from_value(json!({
        "name": "fetch", "version": "1.0.0",
        "parameters": [{"name": "what", "type": "string", "pattern": "^[a-z]+$"}],
        "steps": [{"id": "get", "tool": "record", "arguments": {"label": "${what}"}}]
    }))
    .unwrap();
    let pipeline: ensemble_protocol::template::Template = serde_json::from_value(json!({
        "name": "pipeline", "version": "1.2.0", "description": "fetch then count",
        "parameters": [
            {"name": "source", "type": "string"},
            {"name": "count", "type": "integer", "default": 2},
            {"name": "flags", "type": "object", "required": false}
        ],
        "includes": [{"template": "fetch", "prefix": "in", "params": {"what": "${source}"}}],
        "steps": [{"id": "use", "tool": "noop", "depends_on": ["in-get"],
                   "arguments": {"n": "${count}", "got": "${steps.in-get.output.label}"}}]
    }))
    .unwrap();
    for t in [fetch.clone(), pipeline.clone()] {
        let r = ask(&e, |r| {
            WorkflowMsg::TemplateRegister(
                TemplateRegisterRequest { template: t },
                CancellationToken::new(),
                r,
            )
        })
        .await
        .unwrap();
        assert!(r.created);
    }
    // The same again is a no-op; other content under the same version is refused.
    let again = ask(&e, |r| {
        WorkflowMsg::TemplateRegister(
            TemplateRegisterRequest {
                template: fetch.clone(),
            },
            CancellationToken::new(),
            r,
        )
    })
    .await
    .unwrap();
    assert!(!again.created);
    let mut changed = fetch.clone();
    changed.description = Some("other".into());
    let conflict = ask(&e, |r| {
        WorkflowMsg::TemplateRegister(
            TemplateRegisterRequest { template: changed },
            CancellationToken::new(),
            r,
        )
    })
    .await
    .unwrap_err();
    assert!(matches!(conflict, RunError::TemplateConflict(_)));

    // Every parameter problem at once.
    let bad = ask(&e, |r| {
        WorkflowMsg::TemplateInstantiate(
            TemplateInstantiateRequest {
                name: "pipeline".into(),
                version: None,
                params: json!({"count": "ten", "flags": [1], "extra": true})
                    .as_object()
                    .cloned()
                    .unwrap(),
            },
            CancellationToken::new(),
            r,
        )
    })
    .await
    .unwrap_err();
    let RunError::Template(problems) = &bad else {
        panic!("{bad:?}")
    };
    let text = bad.to_string();
    // Four of the template's own, and what the missing `source` leaves the include without.
    assert_eq!(problems.len(), 5, "{text}");
    for needle in ["source", "count", "flags", "extra", "in include `in`"] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    // The include's pattern is checked too.
    let bad = ask(&e, |r| {
        WorkflowMsg::TemplateInstantiate(
            TemplateInstantiateRequest {
                name: "pipeline".into(),
                version: Some("^1".into()),
                params: json!({"source": "Not Lower"}).as_object().cloned().unwrap(),
            },
            CancellationToken::new(),
            r,
        )
    })
    .await
    .unwrap_err();
    assert!(bad.to_string().contains("what"), "{bad}");

    // Run from the template, after a restart of the engine (templates are durable).
    crash_workflow_actor(&e).await;
    let got = ask(&e, |r| {
        WorkflowMsg::TemplateGet(
            TemplateGetRequest {
                name: "pipeline".into(),
                version: None,
            },
            CancellationToken::new(),
            r,
        )
    })
    .await
    .unwrap();
    assert_eq!(got, pipeline);
    let mut req = RunRequest::of(
        Definition { steps: Vec::new() },
        json!({"source": "abc"}).as_object().cloned().unwrap(),
    );
    req.definition = None;
    req.template = Some("pipeline".into());
    req.wait = true;
    let info = run(&e, req).await.unwrap();
    assert_eq!(info.state, RunState::Completed, "{info:?}");
    assert_eq!(info.template.as_deref(), Some("pipeline@1.2.0"));
    assert_eq!(
        step(&info, "use").output,
        Some(json!({"ok": true, "args": {"n": 2, "got": "abc"}}))
    );
}

/// A caller who sees only its own runs gets an error, not a shorter list, when the record of
/// who submitted a run cannot be read: a damaged record never hides (or shows) a run silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_submitter_is_an_error_in_a_submitters_list() {
    let tools = Tools::new();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let e = engines(&tools, store.clone(), true).await;
    let mut req = RunRequest::of(
        def(json!([{"id": "a", "tool": "noop", "arguments": {}}])),
        Default::default(),
    );
    req.submitter = Some(ensemble_protocol::principal::Principal {
        subject: "alice".into(),
        roles: vec!["dev".into()],
    });
    req.wait = true;
    let info = run(&e, req).await.expect("the run");
    let list = |owner: &str| {
        let owner = owner.to_string();
        e.workflow.ask(move |r| {
            WorkflowMsg::ActingFor(
                owner,
                Box::new(WorkflowMsg::List(
                    Default::default(),
                    CancellationToken::new(),
                    r,
                )),
            )
        })
    };
    assert_eq!(list("alice").await.unwrap().unwrap().runs.len(), 1);
    assert!(list("bob").await.unwrap().unwrap().runs.is_empty());
    store
        .tree("workflow")
        .unwrap()
        .insert_raw(format!("by/{}", info.run_id).as_bytes(), b"\x01garbage")
        .unwrap();
    // After a restart the finished run's submitter is read from the journal.
    crash_workflow_actor(&e).await;
    for owner in ["alice", "bob"] {
        let answer = list(owner).await.unwrap();
        assert!(answer.is_err(), "{owner}: {answer:?}");
    }
}
