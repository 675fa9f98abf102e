//! Integration tests of `agentopt-math`.

mod answer;
mod checking;
mod code;
mod data;
mod normalize;
mod numeric;
mod properties;
mod scoring;
