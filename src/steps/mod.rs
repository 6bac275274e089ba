//! The deployment's steps, one module each. The pipeline (`pipeline.rs`) decides which run and
//! in which order; a step does its one job and reports an [`Outcome`].

pub mod custom;
pub mod env;
pub mod pip;
pub mod runtime;
pub mod start_check;
pub mod sync;
pub mod tail;

/// How a step ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It did its work; the text says what, for the log.
    Done(String),
    /// It had nothing to do; the text says why.
    Skipped(String),
}
