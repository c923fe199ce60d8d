//! The try engine against a scripted transport: which tries happen, what they avoid,
//! and what the request ends with.

use std::collections::VecDeque;

use super::*;
use crate::model::route::retry_on;
use crate::policy::reject::RejectKind;

/// A try's scripted result: an answer with an HTTP status, or an error.
enum Step {
    Answer(u16),
    Fail(TryFailure),
    Final,
}

struct Script {
    steps: VecDeque<Step>,
    /// Each try's endpoint address (port = try number) and what it was told to avoid.
    seen: Vec<(SocketAddr, Vec<SocketAddr>, bool)>,
    budget: u32,
}

impl Script {
    fn new(steps: Vec<Step>) -> Script {
        Script {
            steps: steps.into(),
            seen: Vec::new(),
            budget: u32::MAX,
        }
    }
}

impl Transport for Script {
    type Answer = u16;

    async fn try_once(&mut self, avoid: &[SocketAddr], last: bool) -> Result<u16, TryError> {
        let port = u16::try_from(self.seen.len() + 1).unwrap();
        self.seen.push((
            SocketAddr::from(([127, 0, 0, 1], port)),
            avoid.to_vec(),
            last,
        ));
        match self.steps.pop_front().expect("a step per try") {
            Step::Answer(status) => Ok(status),
            Step::Fail(f) => Err(TryError::Failed(f, Reject::of(RejectKind::ConnectFailure))),
            Step::Final => Err(TryError::Final(Reject::of(RejectKind::NoHealthyUpstream))),
        }
    }

    fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        None
    }

    fn upstream(&self) -> Option<SocketAddr> {
        self.seen.last().map(|(a, _, _)| *a)
    }

    fn status(&self, status: &u16) -> u16 {
        *status
    }

    fn retries_answer(&self, policy: &RetryPolicy, status: &u16) -> bool {
        retry::retries_response(policy, *status, &http::HeaderMap::new())
    }

    fn admit_retry(&mut self) -> Option<RetryActive> {
        self.budget = self.budget.checked_sub(1)?;
        Some(RetryActive::untracked())
    }

    fn timed_out(&self, _per_try: bool) -> Reject {
        Reject::of(RejectKind::Timeout)
    }
}

fn policy(on: u16, retries: u32) -> RetryPolicy {
    RetryPolicy {
        on,
        num_retries: retries,
        per_try_timeout: None,
        retriable_status_codes: vec![],
    }
}

fn plan(p: &RetryPolicy) -> Plan<'_> {
    Plan {
        retry: Some(p),
        deadline: None,
    }
}

#[tokio::test]
async fn a_retriable_failure_is_retried_elsewhere_until_an_answer() {
    let p = policy(retry_on::CONNECT_FAILURE, 3);
    let mut t = Script::new(vec![
        Step::Fail(TryFailure::Connect),
        Step::Fail(TryFailure::Connect),
        Step::Answer(200),
    ]);
    let tries = run(&mut t, plan(&p)).await;
    assert_eq!(tries.result.unwrap(), 200);
    assert_eq!(tries.retries, 2);
    assert!(!tries.retriable_answer);
    let avoided: Vec<usize> = t.seen.iter().map(|(_, avoid, _)| avoid.len()).collect();
    assert_eq!(
        avoided,
        [0, 1, 2],
        "each retry avoids the endpoints already tried"
    );
    assert!(!t.seen[2].2, "three tries of four: not the last");
}

#[tokio::test]
async fn the_last_retriable_answer_is_kept_and_marked() {
    let p = policy(retry_on::FIVE_XX, 1);
    let mut t = Script::new(vec![Step::Answer(503), Step::Answer(503)]);
    let tries = run(&mut t, plan(&p)).await;
    assert_eq!(tries.result.unwrap(), 503);
    assert_eq!((tries.retries, tries.retriable_answer), (1, true));
    assert!(t.seen[1].2, "the second try was the last");
}

#[tokio::test]
async fn final_errors_unlisted_failures_and_an_empty_budget_end_the_tries() {
    let p = policy(retry_on::FIVE_XX | retry_on::CONNECT_FAILURE, 3);
    let mut t = Script::new(vec![Step::Final]);
    let tries = run(&mut t, plan(&p)).await;
    assert_eq!(
        tries.result.unwrap_err().kind,
        RejectKind::NoHealthyUpstream
    );
    assert_eq!(t.seen.len(), 1);

    let reset_only = policy(retry_on::CONNECT_FAILURE, 3);
    let mut t = Script::new(vec![Step::Fail(TryFailure::Reset)]);
    let tries = run(&mut t, plan(&reset_only)).await;
    assert_eq!(tries.result.unwrap_err().kind, RejectKind::ConnectFailure);
    assert_eq!(t.seen.len(), 1, "a reset is not a connect failure");

    let mut t = Script::new(vec![Step::Answer(503), Step::Answer(200)]);
    t.budget = 0;
    let tries = run(&mut t, plan(&p)).await;
    assert_eq!(
        tries.result.unwrap(),
        503,
        "the retry budget refused a second try"
    );
    assert_eq!(t.seen.len(), 1);
}

#[tokio::test]
async fn without_a_policy_there_is_one_try() {
    let mut t = Script::new(vec![Step::Fail(TryFailure::Connect)]);
    let tries = run(
        &mut t,
        Plan {
            retry: None,
            deadline: None,
        },
    )
    .await;
    assert!(tries.result.is_err());
    assert_eq!((t.seen.len(), tries.retries), (1, 0));
}
