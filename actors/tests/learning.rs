//! The learning core through the shell learner: what it learns, what survives a restart, the
//! memory budget, and merging snapshots between instances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble_actors::invoke::{InvokeError, InvokeFuture, ToolInvoker, ToolTraits};
use ensemble_actors::learning::shell::{ShellLearner, ShellMsg};
use ensemble_actors::learning::{LearnError, LearnerArgs, LearnerConfig, LearnerMsg};
use ensemble_actors::store::Store;
use ensemble_protocol::learning::*;
use ensemble_protocol::shell::*;
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorRef};
use serde_json::{Value, json};

/// `registry_put` and `registry_get` over a map: enough registry for snapshots.
#[derive(Clone, Default)]
struct Registry(Arc<Mutex<HashMap<String, Value>>>);

impl ToolInvoker for Registry {
    fn traits(&self, _tool: &str) -> Option<ToolTraits> {
        Some(ToolTraits::default())
    }

    fn invoke(&self, tool: &str, args: Value, _cancel: CancellationToken) -> InvokeFuture {
        let map = self.0.clone();
        let tool = tool.to_string();
        Box::pin(async move {
            let name = args["name"].as_str().unwrap_or_default().to_string();
            let mut map = map.lock().unwrap();
            match tool.as_str() {
                "registry_put" => {
                    let key = format!("{name}@{}", args["version"].as_str().unwrap_or_default());
                    map.insert(key.clone(), args.clone());
                    map.insert(name, args);
                    Ok(json!({"digest": format!("sha256:{key}")}))
                }
                "registry_get" => {
                    let key = match args["version"].as_str() {
                        Some(v) => format!("{name}@{v}"),
                        None => name,
                    };
                    map.get(&key)
                        .cloned()
                        .ok_or_else(|| InvokeError::Failed(format!("`{key}` not found")))
                }
                other => Err(InvokeError::UnknownTool(other.to_string())),
            }
        })
    }
}

type Shell = ActorRef<LearnerMsg<ensemble_actors::learning::shell::ShellModel>>;

async fn start(store: &Store, registry: &Registry, budget: usize) -> Shell {
    let args = LearnerArgs {
        store: store.clone(),
        invoker: Arc::new(registry.clone()),
        config: LearnerConfig {
            flush_interval: Duration::from_millis(50),
            memory_budget_bytes: budget,
        },
    };
    Actor::spawn(None, ShellLearner::default(), args)
        .await
        .expect("learner")
        .0
}

async fn observe(shell: &Shell, user: &str, command: &str) -> Result<ObserveAck, LearnError> {
    ractor::call!(shell, |r| LearnerMsg::Observe(
        ObserveRequest {
            user: user.into(),
            command: command.into(),
            cwd: None,
            exit_code: None,
        },
        CancellationToken::new(),
        r
    ))
    .expect("the learner answers")
}

async fn suggest(shell: &Shell, user: &str, prefix: Option<&str>) -> Vec<Suggestion> {
    ractor::call!(shell, |r| LearnerMsg::Model(ShellMsg::Suggest(
        SuggestRequest {
            user: user.into(),
            prefix: prefix.map(String::from),
            limit: Some(3),
        },
        CancellationToken::new(),
        r
    )))
    .expect("the learner answers")
    .expect("suggestions")
    .suggestions
}

async fn stats(shell: &Shell) -> LearnerStats {
    ractor::call!(shell, |r| LearnerMsg::Stats(
        StatsRequest {
            learner: "shell".into()
        },
        CancellationToken::new(),
        r
    ))
    .expect("answers")
    .expect("stats")
}

fn commands(s: &[Suggestion]) -> Vec<&str> {
    s.iter().map(|s| s.command.as_str()).collect()
}

const BIG: usize = 64 << 20;

#[tokio::test]
async fn it_suggests_what_usually_follows_and_respects_a_prefix() {
    let store = Store::temporary().unwrap();
    let shell = start(&store, &Registry::default(), BIG).await;
    for _ in 0..5 {
        for c in ["git status", "git  add  -A", "git commit", "make test"] {
            observe(&shell, "ana", c).await.unwrap();
        }
    }
    observe(&shell, "ana", "git status").await.unwrap();
    let s = suggest(&shell, "ana", None).await;
    assert_eq!(s[0].command, "git add -A", "{s:?}");
    assert_eq!(s[0].source, "user");
    assert!(s[0].score > 0.5 && s[0].score <= 1.0, "{s:?}");
    assert_eq!(
        commands(&suggest(&shell, "ana", Some("make")).await),
        ["make test"]
    );
    // A new user gets the prior learned from everyone.
    observe(&shell, "bo", "git status").await.unwrap();
    let s = suggest(&shell, "bo", None).await;
    assert_eq!(s[0].command, "git add -A");
    assert_eq!(s[0].source, "prior");
    // The running accuracy saw most first suggestions come true.
    let st = stats(&shell).await;
    assert_eq!(st.observations, 22);
    assert!(st.accuracy.unwrap() > 0.6, "{st:?}");
}

#[tokio::test]
async fn bad_input_is_refused_with_what_to_fix() {
    let store = Store::temporary().unwrap();
    let shell = start(&store, &Registry::default(), BIG).await;
    let err = observe(&shell, "ana", "   ").await.unwrap_err();
    assert!(err.to_string().contains("`command` is empty"), "{err}");
    let err = observe(&shell, "", "ls").await.unwrap_err();
    assert!(err.to_string().contains("`user` is empty"), "{err}");
    let huge = "x".repeat(1 << 20);
    let err = observe(&shell, "ana", &huge).await.unwrap_err();
    assert!(err.to_string().contains("up to 65536 bytes"), "{err}");
    // A long script is acknowledged, never suggested.
    observe(&shell, "ana", &"y".repeat(5000)).await.unwrap();
    assert!(suggest(&shell, "ana", None).await.is_empty());
    assert_eq!(stats(&shell).await.observations, 1);
    // Another learner's name is refused.
    let err = ractor::call!(shell, |r| LearnerMsg::Stats(
        StatsRequest {
            learner: "devops".into()
        },
        CancellationToken::new(),
        r
    ))
    .unwrap()
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown learner `devops`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_restarted_learner_answers_exactly_as_before_even_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::default();
    let history = [
        "ls",
        "cd src",
        "vim main.rs",
        "cargo build",
        "ls",
        "cd src",
        "cargo test",
    ];
    let before;
    {
        let store = Store::open(dir.path()).unwrap();
        let shell = start(&store, &registry, BIG).await;
        for c in history {
            observe(&shell, "ana", c).await.unwrap();
        }
        observe(&shell, "ana", "ls").await.unwrap();
        before = suggest(&shell, "ana", None).await;
        // Past one flush interval, then killed: no post_stop, no last flush.
        tokio::time::sleep(Duration::from_millis(200)).await;
        shell.kill_and_wait(None).await.unwrap();
        drop(store);
    }
    let store = Store::open(dir.path()).unwrap();
    let shell = start(&store, &registry, BIG).await;
    assert_eq!(suggest(&shell, "ana", None).await, before);
    assert_eq!(stats(&shell).await.observations, 8);

    // A graceful stop writes what the timer had not.
    for c in ["make", "make install"] {
        observe(&shell, "cy", c).await.unwrap();
    }
    observe(&shell, "cy", "make").await.unwrap();
    let cy = suggest(&shell, "cy", None).await;
    shell.stop_and_wait(None, None).await.unwrap();
    let shell = start(&store, &registry, BIG).await;
    assert_eq!(suggest(&shell, "cy", None).await, cy);
}

#[tokio::test]
async fn over_its_budget_a_learner_evicts_the_least_seen_and_keeps_serving() {
    let store = Store::temporary().unwrap();
    let budget = 16 * 1024;
    let shell = start(&store, &Registry::default(), budget).await;
    // A habit seen often, and a long tail of one-off commands.
    for i in 0..600 {
        observe(&shell, "ana", "git status").await.unwrap();
        observe(&shell, "ana", "git diff").await.unwrap();
        observe(&shell, "ana", &format!("echo {i}")).await.unwrap();
    }
    let st = stats(&shell).await;
    assert!(st.memory_bytes <= budget as u64, "{st:?}");
    assert!(st.evicted > 0, "{st:?}");
    assert_eq!(st.memory_budget_bytes, budget as u64);
    // The habit survived the evictions; the user's last commands too.
    observe(&shell, "ana", "git status").await.unwrap();
    assert_eq!(suggest(&shell, "ana", None).await[0].command, "git diff");
    // Evicted patterns are gone from disk as well: a restart stays within the budget.
    tokio::time::sleep(Duration::from_millis(150)).await;
    shell.stop_and_wait(None, None).await.unwrap();
    let shell = start(&store, &Registry::default(), budget).await;
    assert!(stats(&shell).await.memory_bytes <= budget as u64);
}

async fn export(shell: &Shell) -> ExportResponse {
    ractor::call!(shell, |r| LearnerMsg::Export(
        ExportRequest {
            learner: "shell".into(),
            name: None
        },
        CancellationToken::new(),
        r
    ))
    .unwrap()
    .expect("exported")
}

async fn import(shell: &Shell, artifact: &str) -> Result<ImportResponse, LearnError> {
    ractor::call!(shell, |r| LearnerMsg::Import(
        ImportRequest {
            learner: "shell".into(),
            artifact: artifact.into()
        },
        CancellationToken::new(),
        r
    ))
    .unwrap()
}

#[tokio::test]
async fn snapshots_merge_once_however_often_they_are_imported() {
    let registry = Registry::default();
    let (sa, sb) = (Store::temporary().unwrap(), Store::temporary().unwrap());
    let (a, b) = (
        start(&sa, &registry, BIG).await,
        start(&sb, &registry, BIG).await,
    );
    for _ in 0..4 {
        for c in [
            "kubectl get pods",
            "kubectl logs web",
            "kubectl describe pod web",
        ] {
            observe(&a, "ops", c).await.unwrap();
        }
    }
    observe(&a, "ops", "kubectl get pods").await.unwrap();
    observe(&b, "dev", "cargo build").await.unwrap();
    observe(&b, "dev", "cargo test").await.unwrap();

    let snap = export(&a).await;
    assert_eq!(snap.version, "1.0.1");
    assert!(snap.name.starts_with("learning/shell/"));
    let first = import(&b, &snap.name).await.unwrap();
    assert!(
        first.changed > 0 && first.patterns == snap.patterns,
        "{first:?}"
    );
    // B now knows A's user, their last command included.
    assert_eq!(
        suggest(&b, "ops", None).await[0].command,
        "kubectl logs web"
    );
    assert_eq!(suggest(&b, "dev", None).await[0].command, "cargo build");
    // The same snapshot again changes nothing.
    let again = import(&b, &format!("{}@{}", snap.name, snap.version))
        .await
        .unwrap();
    assert_eq!(again.changed, 0);

    // A imports B's snapshot, which holds A's counts too: A ends up exactly where one learner
    // that saw both histories is, not with its own counts doubled.
    let back = export(&b).await;
    import(&a, &back.name).await.unwrap();
    let both = start(&Store::temporary().unwrap(), &registry, BIG).await;
    for _ in 0..4 {
        for c in [
            "kubectl get pods",
            "kubectl logs web",
            "kubectl describe pod web",
        ] {
            observe(&both, "ops", c).await.unwrap();
        }
    }
    observe(&both, "ops", "kubectl get pods").await.unwrap();
    observe(&both, "dev", "cargo build").await.unwrap();
    observe(&both, "dev", "cargo test").await.unwrap();
    assert_eq!(
        suggest(&a, "ops", None).await,
        suggest(&both, "ops", None).await
    );

    // Not a snapshot: a clear refusal.
    registry
        .0
        .lock()
        .unwrap()
        .insert("cfg".into(), json!({"name": "cfg", "content": {"a": 1}}));
    let err = import(&a, "cfg").await.unwrap_err();
    assert!(err.to_string().contains("not a learning snapshot"), "{err}");
}

async fn check(shell: &Shell, command: &str) -> Result<CheckResponse, LearnError> {
    ractor::call!(shell, |r| LearnerMsg::Model(ShellMsg::Check(
        CheckRequest {
            command: command.into(),
            shellcheck: Some(false),
        },
        CancellationToken::new(),
        r
    )))
    .expect("the learner answers")
}

async fn feedback(
    shell: &Shell,
    command: &str,
    label: &str,
) -> Result<FeedbackResponse, LearnError> {
    ractor::call!(shell, |r| LearnerMsg::Model(ShellMsg::Feedback(
        FeedbackRequest {
            command: command.into(),
            label: label.into(),
            category: (label == "malicious").then(|| "test".to_string()),
        },
        CancellationToken::new(),
        r
    )))
    .expect("the learner answers")
}

/// Labelled examples: commands built on one made-up tool that the rules know nothing about.
async fn teach(shell: &Shell) {
    for i in 0..15 {
        feedback(shell, &format!("zork --exfil /data/{i}"), "malicious")
            .await
            .unwrap();
        feedback(shell, &format!("ls -l notes{i}.txt"), "harmless")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn feedback_teaches_the_safety_model_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::default();
    let store = Store::open(dir.path()).unwrap();
    let shell = start(&store, &registry, BIG).await;
    // Untrained, the rules know nothing against this tool.
    let untrained = check(&shell, "zork --exfil /srv/db").await.unwrap();
    assert_eq!(untrained.verdict, "allow", "{untrained:?}");
    teach(&shell).await;
    let trained = check(&shell, "zork --exfil /srv/db").await.unwrap();
    assert_ne!(trained.verdict, "allow", "{trained:?}");
    assert!(trained.findings.iter().any(|f| f.rule == "learned"));
    // What was labelled harmless stays allowed, and so does an unrelated command.
    assert_eq!(
        check(&shell, "ls -l notes3.txt").await.unwrap().verdict,
        "allow"
    );
    assert_eq!(check(&shell, "git status").await.unwrap().verdict, "allow");
    // An exact label overrides the rules: a command an operator vouched for.
    let rules_say = check(&shell, "cat /etc/shadow").await.unwrap();
    assert_eq!(rules_say.verdict, "block");
    let after = feedback(&shell, "cat /etc/shadow", "harmless")
        .await
        .unwrap();
    assert_eq!(after.verdict, "allow");
    assert_eq!((after.harmless, after.malicious), (16, 15));
    // Its running accuracy on the labels, judged before each was learned: the harmless `ls`
    // were allowed from the start, the first `zork`s were not caught, `cat /etc/shadow`
    // labelled harmless was blocked.
    let safety = stats(&shell).await.tasks["safety"];
    assert!(safety > 0.5 && safety < 1.0, "{safety}");

    // Killed after a flush interval: the restarted learner judges exactly as before.
    tokio::time::sleep(Duration::from_millis(200)).await;
    shell.kill_and_wait(None).await.unwrap();
    let shell = start(&store, &registry, BIG).await;
    assert_eq!(
        check(&shell, "zork --exfil /srv/db").await.unwrap(),
        trained
    );
    assert_eq!(
        check(&shell, "cat /etc/shadow").await.unwrap().verdict,
        "allow"
    );
}

#[tokio::test]
async fn bad_safety_input_is_refused_with_what_to_fix() {
    let shell = start(&Store::temporary().unwrap(), &Registry::default(), BIG).await;
    let err = |r: Result<_, LearnError>| match r {
        Err(LearnError::BadInput(m)) => m,
        other => panic!("expected BadInput, got {other:?}"),
    };
    assert!(err(check(&shell, "").await.map(|_| ())).contains("empty"));
    assert!(err(check(&shell, "  \n\t").await.map(|_| ())).contains("empty"));
    let huge = "a".repeat(1 << 20);
    let m = err(check(&shell, &huge).await.map(|_| ()));
    assert!(m.contains("1048576 bytes") && m.contains("65536"), "{m}");
    assert!(err(check(&shell, "ls\0rm").await.map(|_| ())).contains("NUL"));
    let m = err(feedback(&shell, "ls", "benign").await.map(|_| ()));
    assert!(m.contains("`harmless` or `malicious`"), "{m}");
    // Refused input taught nothing, and the learner still answers.
    assert_eq!(stats(&shell).await.patterns, 0);
    assert_eq!(check(&shell, "ls").await.unwrap().verdict, "allow");
    // Nothing a shell accepts crashes the checker, however odd.
    for odd in [
        "'",
        "\"",
        "$(",
        "`",
        "<<EOF",
        "((",
        "}",
        "case",
        "if then fi",
        ":(){",
        "\\",
        "a|||b",
        "$'\\x'",
        "${",
        "ls >",
        "!!",
        "😀 $(😀) '😀'",
        "#!/bin/sh\n",
        "\u{202e}rm -rf /",
    ] {
        check(&shell, odd).await.unwrap();
    }
}

#[tokio::test]
async fn safety_labels_merge_once_between_instances() {
    let registry = Registry::default();
    let a = start(&Store::temporary().unwrap(), &registry, BIG).await;
    let b = start(&Store::temporary().unwrap(), &registry, BIG).await;
    teach(&a).await;
    let snap = export(&a).await;
    import(&b, &snap.name).await.unwrap();
    let on_a = check(&a, "zork --exfil /srv/db").await.unwrap();
    assert_eq!(check(&b, "zork --exfil /srv/db").await.unwrap(), on_a);
    // Importing again counts nothing twice: the same answer, the same totals.
    let again = import(&b, &snap.name).await.unwrap();
    assert_eq!(again.changed, 0);
    let totals = feedback(&b, "pwd", "harmless").await.unwrap();
    assert_eq!((totals.harmless, totals.malicious), (16, 15));
}
