//! The worker as a user runs it: real `producer` and `worker` processes, a real Redis and
//! the in-repo Flinks simulator on port 0.

mod control;
mod deactivation;
mod dead_letters;
mod helpers;
mod observability;
mod ratelimit;
mod reliability;
mod routine;
mod webhooks;
