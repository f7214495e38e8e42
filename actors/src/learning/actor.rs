//! The learner actor every learning server runs in: observations batched to disk, a memory
//! budget, statistics, and export/import of what was learned through the registry.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ensemble_protocol::codec;
use ensemble_protocol::learning::*;
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::counter::InstanceId;
use super::patterns::{Pattern, Patterns, Staged};
use super::{LearnError, LearnerConfig};
use crate::invoke::ToolInvoker;
use crate::store::{Store, StoreError, Tree};

/// A learner's answer to one request.
pub type Reply<T> = RpcReplyPort<Result<T, LearnError>>;

/// What a learning server knows how to learn and answer. The [`LearnerActor`] around it does the
/// rest (persistence, budget, statistics, export and import).
pub trait Model: Sized + Send + Sync + 'static {
    /// The learner's name (`shell`, …): its tree is `learning.<name>`.
    const NAME: &'static str;
    /// What it stores.
    type Pattern: Pattern;
    /// One observation.
    type Observation: Send + 'static;
    /// Its own requests (queries, feedback), each carrying its reply port.
    type Msg: Send + 'static;
    /// What it says about an observation besides the count (e.g. what it could not read).
    type Detail: Send + 'static;

    /// Builds the model's derived state from the stored patterns.
    fn open(patterns: &Patterns<Self::Pattern>, instance: InstanceId) -> Self;

    /// Learns one observation (which may hold several: a batch of files): how many it learned,
    /// and what else there is to say.
    fn observe(
        &mut self,
        cx: &mut Cx<'_, Self::Pattern>,
        obs: Self::Observation,
    ) -> Result<(u64, Self::Detail), LearnError>;

    /// Answers one of its own requests.
    fn handle(&mut self, cx: &mut Cx<'_, Self::Pattern>, msg: Self::Msg);

    /// Patterns that are never evicted (e.g. a user's last commands).
    fn keep(_key: &[u8]) -> bool {
        false
    }

    /// Rebuilds derived state after patterns were merged in or evicted.
    fn refresh(&mut self, _patterns: &Patterns<Self::Pattern>) {}

    /// The learner's own running accuracy, where it measures one.
    fn accuracy(&self) -> Option<f64> {
        None
    }

    /// Running accuracy per task, for a learner with several.
    fn task_accuracies(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}

/// What a model sees while it learns or answers.
pub struct Cx<'a, P: Pattern> {
    /// The patterns.
    pub patterns: &'a mut Patterns<P>,
    /// This instance.
    pub instance: InstanceId,
    /// The observation clock: observations learned so far (while observing, this one included).
    pub clock: u64,
}

/// Messages of a learner actor.
pub enum LearnerMsg<M: Model> {
    /// Learn an observation (acknowledged at once, durable within the flush interval).
    Observe(
        M::Observation,
        CancellationToken,
        Reply<ObserveAck<M::Detail>>,
    ),
    /// One of the model's own requests.
    Model(M::Msg),
    /// Write a snapshot of the patterns to the registry.
    Export(ExportRequest, CancellationToken, Reply<ExportResponse>),
    /// Merge a snapshot from the registry.
    Import(ImportRequest, CancellationToken, Reply<ImportResponse>),
    /// The learner's figures.
    Stats(StatsRequest, CancellationToken, Reply<LearnerStats>),
    /// Write what changed to disk now (the flush timer sends it).
    Flush,
}

impl<M: Model> std::fmt::Debug for LearnerMsg<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LearnerMsg::Observe(..) => "Observe",
            LearnerMsg::Model(_) => "Model",
            LearnerMsg::Export(..) => "Export",
            LearnerMsg::Import(..) => "Import",
            LearnerMsg::Stats(..) => "Stats",
            LearnerMsg::Flush => "Flush",
        })
    }
}

/// What a learner actor starts with.
#[derive(Clone)]
pub struct LearnerArgs {
    /// The runtime's store.
    pub store: Store,
    /// Tools (the registry, for export and import).
    pub invoker: Arc<dyn ToolInvoker>,
    /// Flush interval and memory budget.
    pub config: LearnerConfig,
}

/// The actor around a [`Model`].
pub struct LearnerActor<M: Model>(std::marker::PhantomData<fn() -> M>);

impl<M: Model> Default for LearnerActor<M> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// A learner actor's state.
pub struct LearnerState<M: Model> {
    model: M,
    patterns: Patterns<M::Pattern>,
    meta: Tree,
    instance: InstanceId,
    meta_record: Meta,
    /// Observations not yet handed to a write.
    pending_observations: u64,
    /// The write in progress, if any: one at a time, so batches land in order.
    writing: Option<Writing>,
    queries: u64,
    evicted: u64,
    args: LearnerArgs,
    gauges: Gauges,
}

/// A write task that panicked or was cancelled (the runtime shutting down).
fn write_stopped(e: tokio::task::JoinError) -> LearnError {
    LearnError::Snapshot(format!("the write of the learned patterns stopped: {e}"))
}

/// A batch of changed patterns being committed and flushed off the actor, so that queries are
/// answered while a large batch (a history imported in bulk) goes to disk.
struct Writing {
    task: tokio::task::JoinHandle<Result<(), LearnError>>,
    /// Its patterns, marked changed again if it fails.
    staged: Staged,
    /// The observations it makes durable.
    observations: u64,
}

struct Gauges {
    memory: metrics::Gauge,
    patterns: metrics::Gauge,
    accuracy: metrics::Gauge,
    observations: metrics::Counter,
    queries: metrics::Counter,
    evictions: metrics::Counter,
}

/// The learner's own record in its meta tree.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    instance: InstanceId,
    observations: u64,
    exports: u64,
}

/// A snapshot as exported: the patterns of one instance at one moment.
#[derive(Serialize, Deserialize)]
struct Snapshot<P> {
    learner: String,
    instance: InstanceId,
    patterns: Vec<(Vec<u8>, P)>,
}

/// The media type of exported snapshots.
pub const SNAPSHOT_MEDIA_TYPE: &str = "application/vnd.ensemble.learning-snapshot";

const META_KEY: &[u8] = b"meta";

fn new_instance_id() -> InstanceId {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process; mix in the clock and pid.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish().max(1)
}

impl<M: Model> LearnerState<M> {
    fn cx(&mut self) -> (&mut M, Cx<'_, M::Pattern>) {
        (
            &mut self.model,
            Cx {
                patterns: &mut self.patterns,
                instance: self.instance,
                clock: self.meta_record.observations,
            },
        )
    }

    fn check_learner(&self, given: &str) -> Result<(), LearnError> {
        if given == M::NAME {
            Ok(())
        } else {
            Err(LearnError::UnknownLearner {
                given: given.to_string(),
                known: M::NAME,
            })
        }
    }

    /// Evicts down to 90% of the budget when over it.
    fn enforce_budget(&mut self) {
        let budget = self.args.config.memory_budget_bytes;
        if self.patterns.bytes() > budget {
            let target = budget / 10 * 9;
            let n = self.patterns.evict_to(target, M::keep);
            if n > 0 {
                self.evicted += n as u64;
                self.gauges.evictions.increment(n as u64);
                tracing::debug!(
                    learner = M::NAME,
                    evicted = n,
                    "memory budget: patterns evicted"
                );
                self.model.refresh(&self.patterns);
            }
        }
        self.gauges.memory.set(self.patterns.bytes() as f64);
        self.gauges.patterns.set(self.patterns.len() as f64);
    }

    /// Makes everything learned so far durable, waiting for it.
    async fn flush(&mut self) -> Result<(), LearnError> {
        // A failed earlier write marks its patterns changed again: the write below retries it.
        let earlier = self.settle(true).await;
        self.start_write()?;
        self.settle(true).await?;
        if let Err(e) = earlier {
            tracing::info!(
                learner = M::NAME,
                "an earlier write failed ({e}); now written"
            );
        }
        Ok(())
    }

    /// The flush timer's tick: hands what changed to a write unless one is still going.
    async fn tick(&mut self) -> Result<(), LearnError> {
        self.settle(false).await?;
        if self.writing.is_none() {
            self.start_write()?;
        }
        Ok(())
    }

    /// Collects the write in progress if it is done (or, with `wait`, once it is); a failed
    /// one leaves its patterns and observations pending again.
    async fn settle(&mut self, wait: bool) -> Result<(), LearnError> {
        let Some(w) = self.writing.take_if(|w| wait || w.task.is_finished()) else {
            return Ok(());
        };
        let result = w.task.await.map_err(write_stopped).and_then(|r| r);
        if result.is_err() {
            self.patterns.restore(w.staged);
            self.pending_observations += w.observations;
        }
        result
    }

    /// Encodes what changed (on the actor: the batch holds the patterns as they are now) and
    /// commits and flushes it on a blocking thread.
    fn start_write(&mut self) -> Result<(), LearnError> {
        if self.patterns.pending() == 0 && self.pending_observations == 0 {
            return Ok(());
        }
        let (batch, staged) = self.patterns.stage()?.unzip();
        let (meta, record) = (self.meta.clone(), self.meta_record.clone());
        let tree = self.patterns.tree().clone();
        let store = self.args.store.clone();
        let task = tokio::spawn(async move {
            tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
                if let Some(batch) = batch {
                    tree.commit(batch)?;
                }
                meta.insert(META_KEY, &record)
            })
            .await
            .map_err(write_stopped)??;
            store.flush().await?;
            Ok(())
        });
        self.writing = Some(Writing {
            task,
            staged: staged.unwrap_or_default(),
            observations: std::mem::take(&mut self.pending_observations),
        });
        Ok(())
    }

    /// Observations learned and not yet durable.
    fn not_durable(&self) -> u64 {
        self.pending_observations + self.writing.as_ref().map_or(0, |w| w.observations)
    }

    fn stats(&self) -> LearnerStats {
        LearnerStats {
            learner: M::NAME.to_string(),
            instance: format!("{:016x}", self.instance),
            observations: self.meta_record.observations,
            queries: self.queries,
            patterns: self.patterns.len() as u64,
            memory_bytes: self.patterns.bytes() as u64,
            memory_budget_bytes: self.args.config.memory_budget_bytes as u64,
            evicted: self.evicted,
            accuracy: self.model.accuracy(),
            tasks: self
                .model
                .task_accuracies()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    async fn export(
        &mut self,
        req: ExportRequest,
        cancel: CancellationToken,
    ) -> Result<ExportResponse, LearnError> {
        self.check_learner(&req.learner)?;
        let snapshot = Snapshot {
            learner: M::NAME.to_string(),
            instance: self.instance,
            patterns: self
                .patterns
                .iter()
                .map(|(k, p)| (k.to_vec(), p.clone()))
                .collect(),
        };
        let patterns = snapshot.patterns.len() as u64;
        let bytes = codec::encode(&snapshot).map_err(|e| LearnError::Snapshot(e.to_string()))?;
        let name = req
            .name
            .unwrap_or_else(|| format!("learning/{}/{:016x}", M::NAME, self.instance));
        let next = self.meta_record.exports + 1;
        let version = format!("1.0.{next}");
        let answer = self
            .args
            .invoker
            .invoke(
                "registry_put",
                json!({
                    "name": name,
                    "version": version,
                    "content_base64": BASE64.encode(&bytes),
                    "media_type": SNAPSHOT_MEDIA_TYPE,
                    "labels": {"learner": M::NAME, "instance": format!("{:016x}", self.instance)},
                }),
                cancel,
            )
            .await
            .map_err(|e| LearnError::Registry(e.to_string()))?;
        self.meta_record.exports = next;
        self.meta.insert(META_KEY, &self.meta_record)?;
        let digest = answer
            .get("digest")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_string();
        Ok(ExportResponse {
            name,
            version,
            digest,
            patterns,
        })
    }

    async fn import(
        &mut self,
        req: ImportRequest,
        cancel: CancellationToken,
    ) -> Result<ImportResponse, LearnError> {
        self.check_learner(&req.learner)?;
        let (name, version) = match req.artifact.split_once('@') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (req.artifact.clone(), None),
        };
        let mut get = json!({"name": name});
        if let Some(v) = version {
            get["version"] = json!(v);
        }
        let artifact = self
            .args
            .invoker
            .invoke("registry_get", get, cancel)
            .await
            .map_err(|e| LearnError::Registry(e.to_string()))?;
        let encoded = artifact
            .get("content_base64")
            .and_then(|c| c.as_str())
            .ok_or_else(|| {
                LearnError::Snapshot(format!(
                    "`{}` is not a learning snapshot (it holds JSON, not a snapshot's bytes)",
                    req.artifact
                ))
            })?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|e| LearnError::Snapshot(format!("`{}`: {e}", req.artifact)))?;
        let snapshot: Snapshot<M::Pattern> = codec::decode(&bytes).map_err(|e| {
            LearnError::Snapshot(format!(
                "`{}` is not a readable snapshot: {e}",
                req.artifact
            ))
        })?;
        if snapshot.learner != M::NAME {
            return Err(LearnError::Snapshot(format!(
                "`{}` is a snapshot of the `{}` learner, not of `{}`",
                req.artifact,
                snapshot.learner,
                M::NAME
            )));
        }
        let mut changed = 0u64;
        for (key, pattern) in &snapshot.patterns {
            if self.patterns.merge(key, pattern) {
                changed += 1;
            }
        }
        self.model.refresh(&self.patterns);
        self.enforce_budget();
        // Imports are rare and large: make them durable before answering.
        self.flush().await?;
        Ok(ImportResponse {
            from_instance: format!("{:016x}", snapshot.instance),
            patterns: snapshot.patterns.len() as u64,
            changed,
        })
    }
}

impl<M: Model> Actor for LearnerActor<M> {
    type Msg = LearnerMsg<M>;
    type State = LearnerState<M>;
    type Arguments = LearnerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: LearnerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let tree = args.store.tree(&format!("learning.{}", M::NAME))?;
        let meta = args.store.tree(&format!("learning.{}.meta", M::NAME))?;
        let meta_record = match meta.get::<Meta>(META_KEY)? {
            Some(m) => m,
            None => {
                let m = Meta {
                    instance: new_instance_id(),
                    ..Meta::default()
                };
                meta.insert(META_KEY, &m)?;
                args.store.flush().await?;
                m
            }
        };
        let patterns = Patterns::load(tree)?;
        let model = M::open(&patterns, meta_record.instance);
        let name = M::NAME;
        let gauges = Gauges {
            memory: metrics::gauge!("ensemble_learner_memory_bytes", "learner" => name),
            patterns: metrics::gauge!("ensemble_learner_patterns", "learner" => name),
            accuracy: metrics::gauge!("ensemble_learner_accuracy", "learner" => name),
            observations: metrics::counter!("ensemble_learner_observations_total", "learner" => name),
            queries: metrics::counter!("ensemble_learner_queries_total", "learner" => name),
            evictions: metrics::counter!("ensemble_learner_evictions_total", "learner" => name),
        };
        metrics::gauge!("ensemble_learner_memory_budget_bytes", "learner" => name)
            .set(args.config.memory_budget_bytes as f64);
        let interval = args.config.flush_interval;
        let mut state = LearnerState {
            model,
            patterns,
            meta,
            instance: meta_record.instance,
            meta_record,
            pending_observations: 0,
            writing: None,
            queries: 0,
            evicted: 0,
            args,
            gauges,
        };
        state.enforce_budget();
        myself.send_interval(interval, || LearnerMsg::Flush);
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(e) = state.flush().await {
            tracing::error!(
                learner = M::NAME,
                "could not write the last observations: {e}"
            );
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LearnerMsg::Observe(obs, cancel, reply) => {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                let (model, mut cx) = state.cx();
                // The clock counts this observation while it is learned.
                cx.clock += 1;
                let result = model.observe(&mut cx, obs);
                if let Ok((n, _)) = &result {
                    state.meta_record.observations += n;
                    state.pending_observations += n;
                    state.gauges.observations.increment(*n);
                    state.enforce_budget();
                    if let Some(a) = state.model.accuracy() {
                        state.gauges.accuracy.set(a);
                    }
                }
                let _ = reply.send(result.map(|(learned, detail)| ObserveAck {
                    learned,
                    pending: state.not_durable(),
                    detail,
                }));
            }
            LearnerMsg::Model(msg) => {
                state.queries += 1;
                state.gauges.queries.increment(1);
                let (model, mut cx) = state.cx();
                model.handle(&mut cx, msg);
                state.enforce_budget();
            }
            LearnerMsg::Export(req, cancel, reply) => {
                let r = state.export(req, cancel).await;
                let _ = reply.send(r);
            }
            LearnerMsg::Import(req, cancel, reply) => {
                let r = state.import(req, cancel).await;
                let _ = reply.send(r);
            }
            LearnerMsg::Stats(req, _, reply) => {
                let r = state.check_learner(&req.learner).map(|()| state.stats());
                let _ = reply.send(r);
            }
            LearnerMsg::Flush => {
                // A failed write is retried at the next tick; what is stored stays as it was.
                if let Err(e) = state.tick().await {
                    tracing::warn!(learner = M::NAME, "could not write observations: {e}");
                }
            }
        }
        Ok(())
    }
}
