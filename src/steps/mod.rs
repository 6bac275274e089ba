//! The deployment's steps, one module each. The pipeline (`pipeline.rs`) decides which run and
//! in which order; a step does its one job and reports an [`Outcome`].

pub mod check_memo;
pub mod custom;
pub mod env;
pub mod error;
pub mod pip;
pub mod runtime;
pub mod start_check;
pub mod sync;
pub mod tail;

use std::time::Duration;

use crate::release::record::{StepOutcome, StepRecord};

/// How a step ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It did its work; the text says what, for the log.
    Done(String),
    /// It had nothing to do; the text says why.
    Skipped(String),
}

impl StepRecord {
    /// The record of a step that ended with `outcome` (the record lives with the releases; how
    /// a step ends is the steps' own vocabulary).
    pub fn new(name: &str, outcome: &Outcome, took: Duration) -> StepRecord {
        let (outcome, detail) = match outcome {
            Outcome::Done(what) => (StepOutcome::Done, what),
            Outcome::Skipped(why) => (StepOutcome::Skipped, why),
        };
        StepRecord {
            name: name.to_string(),
            outcome,
            detail: crate::release::record::first_line(detail),
            seconds: took.as_secs_f64(),
        }
    }
}
