//! Real-time routes: the event socket (`GET /v1/ws`, one per device) and
//! presence (`GET /v1/users/{id}/presence`), with the task that forwards
//! published events to this process's sockets. The plumbing they share with
//! the rest of the API (hub, fanout, heartbeats) is [`crate::core::realtime`].

pub mod listener;
pub mod presence;
pub mod socket;
