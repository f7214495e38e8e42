//! Restart strategies and the pure decision of what to stop and restart when a child exits.

/// Which siblings are restarted with a child that exits (Erlang/OTP meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the child that exited is restarted.
    #[default]
    OneForOne,
    /// Every child is stopped (reverse start order) and all are restarted (start order).
    OneForAll,
    /// The children started after the one that exited are stopped (reverse order), then it and
    /// they are restarted (start order).
    RestForOne,
}

/// When a child is restarted (Erlang/OTP meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartType {
    /// Always restarted, whatever the exit.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (a panic, an error, a kill); a normal stop is final.
    Transient,
    /// Never restarted; when its siblings are restarted with it, it is stopped and stays down.
    Temporary,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It stopped by itself (or was stopped by someone else) cleanly.
    Normal,
    /// It panicked, returned an error, was killed, or could not start.
    Abnormal,
}

/// What the supervisor does about one exit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestartPlan {
    /// Running siblings to stop, in the order to stop them (reverse start order).
    pub stop: Vec<usize>,
    /// Children to start again, in start order. Empty when nothing is restarted.
    pub restart: Vec<usize>,
    /// Siblings that are stopped for good (temporary children caught in a group restart).
    pub discard: Vec<usize>,
}

impl RestartPlan {
    /// True when the exit needs no restart at all (and counts against no intensity).
    pub fn is_noop(&self) -> bool {
        self.restart.is_empty() && self.stop.is_empty()
    }
}

/// Decides what follows the exit of child `exited`.
///
/// `children[i]` is child `i`'s restart type and whether it is running now (the exited child
/// counts as not running). Children are numbered in start order.
pub fn plan(
    strategy: Strategy,
    children: &[(RestartType, bool)],
    exited: usize,
    exit: ExitKind,
) -> RestartPlan {
    let restart_self = match children[exited].0 {
        RestartType::Permanent => true,
        RestartType::Transient => exit == ExitKind::Abnormal,
        RestartType::Temporary => false,
    };
    if !restart_self {
        return RestartPlan::default();
    }
    let group: Vec<usize> = match strategy {
        Strategy::OneForOne => vec![exited],
        Strategy::OneForAll => (0..children.len()).collect(),
        Strategy::RestForOne => (exited..children.len()).collect(),
    };
    let mut out = RestartPlan::default();
    for &i in group.iter().rev() {
        if i != exited && children[i].1 {
            out.stop.push(i);
        }
    }
    for &i in &group {
        if i == exited || children[i].0 != RestartType::Temporary {
            out.restart.push(i);
        } else {
            out.discard.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{ExitKind, RestartType, plan};
    use proptest::prelude::{Just, any, prop_assert, prop_assert_eq, prop_oneof, proptest};

    fn restart_type() -> impl proptest::strategy::Strategy<Value = RestartType> {
        prop_oneof![
            Just(RestartType::Permanent),
            Just(RestartType::Transient),
            Just(RestartType::Temporary)
        ]
    }
    fn strategy() -> impl proptest::strategy::Strategy<Value = super::Strategy> {
        prop_oneof![
            Just(super::Strategy::OneForOne),
            Just(super::Strategy::OneForAll),
            Just(super::Strategy::RestForOne)
        ]
    }

    proptest! {
        #[test]
        fn plans_follow_otp(strat in strategy(),
                            kids in proptest::collection::vec((restart_type(), any::<bool>()), 1..8),
                            pick in any::<proptest::sample::Index>(),
                            abnormal in any::<bool>()) {
            let exited = pick.index(kids.len());
            let mut kids = kids;
            kids[exited].1 = false;
            let exit = if abnormal { ExitKind::Abnormal } else { ExitKind::Normal };
            let p = plan(strat, &kids, exited, exit);

            let should_restart = match kids[exited].0 {
                RestartType::Permanent => true,
                RestartType::Transient => abnormal,
                RestartType::Temporary => false,
            };
            if !should_restart {
                prop_assert!(p.is_noop() && p.discard.is_empty());
                return Ok(());
            }
            // The exited child always comes back, and is never stopped.
            prop_assert!(p.restart.contains(&exited));
            prop_assert!(!p.stop.contains(&exited));
            // Stops go in reverse start order, restarts in start order.
            prop_assert!(p.stop.windows(2).all(|w| w[0] > w[1]));
            prop_assert!(p.restart.windows(2).all(|w| w[0] < w[1]));
            // Only running children are stopped; temporary siblings are never restarted.
            for &i in &p.stop { prop_assert!(kids[i].1); }
            for &i in &p.restart {
                prop_assert!(i == exited || kids[i].0 != RestartType::Temporary);
            }
            let affected: Vec<usize> = match strat {
                super::Strategy::OneForOne => vec![exited],
                super::Strategy::OneForAll => (0..kids.len()).collect(),
                super::Strategy::RestForOne => (exited..kids.len()).collect(),
            };
            let mut touched: Vec<usize> = p.restart.iter().chain(&p.discard).copied().collect();
            touched.sort_unstable();
            prop_assert_eq!(touched, affected.clone());
            for (i, &(_, running)) in kids.iter().enumerate() {
                prop_assert_eq!(p.stop.contains(&i), running && i != exited && affected.contains(&i));
            }
        }
    }

    #[test]
    fn rest_for_one_restarts_the_tail() {
        let kids = [(RestartType::Permanent, true); 4];
        let mut k = kids;
        k[1].1 = false;
        let p = plan(super::Strategy::RestForOne, &k, 1, ExitKind::Abnormal);
        assert_eq!(p.stop, vec![3, 2]);
        assert_eq!(p.restart, vec![1, 2, 3]);
    }
}
