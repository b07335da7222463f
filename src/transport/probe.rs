//! The prober: sends each backend an OPTIONS every `[probe] interval` from the gateway's own
//! address, feeds what comes back (or does not) to [`health::State`], and publishes the set of
//! backends down whenever one changes state, with a log line and the `dualgate_backend_up`
//! gauge. It touches no call routing state but that set. Responses reach it from the receiving
//! workers (`proxy::Event::ProbeReply`), which never forward them.

use super::Shared;
use crate::config::Snapshot;
use crate::health::{self, Down, Key, Probe, State};
use crate::peer::{Peer, Transport};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

/// A response to a probe, as a worker received it.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// The probe's id.
    pub id: u64,
    /// Its status.
    pub status: u16,
    /// Who sent it.
    pub from: Peer,
}

/// One probed backend.
struct Target {
    key: Key,
    state: State,
    /// The probe sent last and not yet answered.
    outstanding: Option<u64>,
    /// `(queue, backend URI)` of every queue that lists it, for the gauge and the log.
    labels: Vec<(String, String)>,
}

/// The probed backends of `snap`, keeping the state of those already known.
fn targets(snap: &Snapshot, old: Vec<Target>) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    if snap.probe.is_none() {
        return out;
    }
    for q in snap.queues.iter().filter(|q| q.probe) {
        for b in &q.backends {
            let key = (b.addr, b.transport);
            let label = (q.name.clone(), b.uri.clone());
            match out.iter_mut().find(|t| t.key == key) {
                Some(t) => t.labels.push(label),
                None => out.push(Target {
                    key,
                    state: old
                        .iter()
                        .find(|t| t.key == key)
                        .map_or_else(State::default, |t| t.state),
                    outstanding: None,
                    labels: vec![label],
                }),
            }
        }
    }
    out
}

fn down_set(targets: &[Target]) -> Arc<Down> {
    Arc::new(Down::new(
        targets
            .iter()
            .filter(|t| !t.state.is_up())
            .map(|t| t.key)
            .collect(),
    ))
}

/// Sets `dualgate_backend_up` for every backend of `snap` as it stands before any probe: each
/// is up until its probes fail. Called before the gateway serves, so the first scrape already
/// has the series (the prober task may not have run yet on a busy machine).
pub fn record_initial(snap: &Snapshot) {
    record_all(snap, &targets(snap, Vec::new()));
}

/// Sets `dualgate_backend_up` for every backend of `snap` (1 for unprobed ones).
fn record_all(snap: &Snapshot, targets: &[Target]) {
    for q in &snap.queues {
        for b in &q.backends {
            let up = targets
                .iter()
                .find(|t| t.key == (b.addr, b.transport))
                .is_none_or(|t| t.state.is_up());
            crate::metrics::record_backend_up(&q.name, &b.uri, up);
        }
    }
}

/// Runs until the runtime shuts down.
pub async fn run(
    shared: Arc<Shared>,
    mut replies: mpsc::Receiver<Reply>,
    health: watch::Sender<Arc<Down>>,
) {
    let mut config = shared.config.clone();
    let mut snap = config.borrow_and_update().clone();
    let mut targets = targets(&snap, Vec::new());
    record_all(&snap, &targets);
    let mut policy = snap.probe.unwrap_or_default();
    let mut tick = tokio::time::interval(policy.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_id: u64 = 1;
    loop {
        tokio::select! {
            _ = tick.tick(), if !targets.is_empty() => {
                let mut changed = false;
                for t in &mut targets {
                    if t.outstanding.take().is_some() {
                        changed |= observe(t, Probe::Missed, &policy);
                    }
                    let id = next_id;
                    next_id += 1;
                    t.outstanding = Some(id);
                    send(&shared, &snap, t, id);
                }
                if changed {
                    health.send_replace(down_set(&targets));
                }
            }
            Some(r) = replies.recv() => {
                let Some(t) = targets.iter_mut().find(|t| t.outstanding == Some(r.id)) else {
                    continue; // late (already counted as missed) or not ours
                };
                if r.from.addr.ip() != t.key.0.ip() || r.status < 200 {
                    continue;
                }
                t.outstanding = None;
                crate::metrics::record_probe(&t.labels, true);
                if observe(t, Probe::Answered(r.status), &policy) {
                    health.send_replace(down_set(&targets));
                }
            }
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
                snap = config.borrow_and_update().clone();
                targets = self::targets(&snap, targets);
                record_all(&snap, &targets);
                health.send_replace(down_set(&targets));
                let new = snap.probe.unwrap_or_default();
                if new.interval != policy.interval {
                    tick = tokio::time::interval(new.interval);
                    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                }
                policy = new;
            }
        }
    }
}

/// Feeds one result to a target; true when its state changed (logged and recorded).
fn observe(t: &mut Target, p: Probe, policy: &health::Policy) -> bool {
    if p == Probe::Missed {
        crate::metrics::record_probe(&t.labels, false);
    }
    let Some(up) = t.state.observe(p, policy) else {
        return false;
    };
    for (queue, backend) in &t.labels {
        crate::metrics::record_backend_up(queue, backend, up);
        if up {
            tracing::info!(queue = %queue, backend = %backend, "backend up: answering probes again");
        } else {
            tracing::warn!(queue = %queue, backend = %backend, misses = policy.down_after, "backend down: new calls go to the queue's other backends");
        }
    }
    true
}

fn send(shared: &Arc<Shared>, snap: &Snapshot, t: &Target, id: u64) {
    let (addr, transport) = t.key;
    let bytes =
        crate::sip::probe::options(&snap.gateway.advertised.to_string(), addr, transport, id);
    let queue = t.labels.first().map_or("none", |(q, _)| q.as_str());
    let sent = match transport {
        Transport::Udp => super::send_udp(&shared.udp, &bytes, addr).map(|_| ()),
        Transport::Tcp => shared.tcp.send(shared, addr, None, bytes, queue),
    };
    if let Err(e) = sent {
        tracing::debug!(to = %addr, error = %e, "probe not sent");
    }
}
