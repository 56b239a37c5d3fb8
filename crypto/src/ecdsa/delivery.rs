//! In-process delivery for the parties' state machines.
//!
//! Every cggmp21 protocol is a sans-IO state machine (`round_based::state_machine`): it asks to
//! send a message or to be given one, and eventually returns its output. [`run`] drives one
//! machine per party in this process: a broadcast goes to every other party's inbox, a
//! point-to-point message to its recipient's, each in the order sent (a reliable, authenticated
//! channel). Over the replica transport the same machines would be driven by a host that sends
//! the messages it is given; nothing in the machines changes.
//!
//! A `tamper` hook may change a message as it leaves its sender (tests of identifiable abort).
//! Bytes are counted as the JSON encoding of each message (what a file or frame carries).

use round_based::state_machine::{ProceedResult, StateMachine};
use round_based::{Incoming, MessageDestination, MessageType, Outgoing, PartyIndex};
use serde::Serialize;
use std::collections::VecDeque;

/// Messages and bytes each party sent during one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages sent per party (a broadcast counts once).
    pub messages: Vec<u64>,
    /// Bytes sent per party: a broadcast counts once per recipient, as on point-to-point links.
    pub bytes: Vec<u64>,
}

/// How a party's machine ended.
#[derive(Debug)]
pub enum Fate<O, E> {
    /// The protocol returned its output.
    Output(O),
    /// The protocol failed (for instance it identified a cheater).
    Failed(E),
    /// The state machine was misused or polled an unsupported future (a bug).
    Broken(String),
    /// The party still waited for messages when no party could make progress (another party
    /// aborted or was cut off).
    Stalled,
}

/// How the machine `SM` ended.
pub type FateOf<SM> = Fate<
    <<SM as StateMachine>::Output as Outcome>::Ok,
    <<SM as StateMachine>::Output as Outcome>::Err,
>;

/// Changes a message as it leaves `sender` (tests only pass anything but a no-op).
pub type Tamper<'a, M> = &'a mut dyn FnMut(PartyIndex, &mut M);

struct Slot<SM: StateMachine>
where
    SM::Output: Outcome,
{
    machine: SM,
    inbox: VecDeque<Incoming<SM::Msg>>,
    waiting: bool,
    fate: Option<FateOf<SM>>,
}

/// The output of a protocol: `Result<O, E>`.
pub trait Outcome {
    type Ok;
    type Err;
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
}

impl<O, E> Outcome for Result<O, E> {
    type Ok = O;
    type Err = E;
    fn into_result(self) -> Self {
        self
    }
}

/// Runs one state machine per party (party `i` is `machines[i]`) until every party has an
/// output, failed, or waits for a message nobody will send.
pub fn run<SM>(machines: Vec<SM>, tamper: Tamper<'_, SM::Msg>) -> (Vec<FateOf<SM>>, Traffic)
where
    SM: StateMachine,
    SM::Output: Outcome,
    SM::Msg: Clone + Serialize,
{
    let n = machines.len();
    let mut slots: Vec<Slot<SM>> = machines
        .into_iter()
        .map(|machine| Slot {
            machine,
            inbox: VecDeque::new(),
            waiting: false,
            fate: None,
        })
        .collect();
    let mut traffic = Traffic {
        messages: vec![0; n],
        bytes: vec![0; n],
    };
    let mut next_id = 0u64;
    loop {
        let mut progressed = false;
        for i in 0..n {
            progressed |= step(&mut slots, i, tamper, &mut traffic, &mut next_id);
        }
        if !progressed {
            break;
        }
    }
    let fates = slots
        .into_iter()
        .map(|slot| slot.fate.unwrap_or(Fate::Stalled))
        .collect();
    (fates, traffic)
}

/// Advances party `i` until it finishes or waits on an empty inbox; true if anything happened.
fn step<SM>(
    slots: &mut [Slot<SM>],
    i: usize,
    tamper: Tamper<'_, SM::Msg>,
    traffic: &mut Traffic,
    next_id: &mut u64,
) -> bool
where
    SM: StateMachine,
    SM::Output: Outcome,
    SM::Msg: Clone + Serialize,
{
    let mut progressed = false;
    while slots[i].fate.is_none() {
        if slots[i].waiting {
            let Some(msg) = slots[i].inbox.pop_front() else {
                return progressed;
            };
            slots[i].waiting = false;
            if slots[i].machine.received_msg(msg).is_err() {
                slots[i].fate = Some(Fate::Broken("a message was refused".into()));
                return true;
            }
        }
        progressed = true;
        match slots[i].machine.proceed() {
            ProceedResult::SendMsg(out) => deliver(slots, i, out, tamper, traffic, next_id),
            ProceedResult::NeedsOneMoreMessage => slots[i].waiting = true,
            ProceedResult::Yielded => {}
            ProceedResult::Output(out) => {
                slots[i].fate = Some(match out.into_result() {
                    Ok(o) => Fate::Output(o),
                    Err(e) => Fate::Failed(e),
                });
            }
            ProceedResult::Error(e) => slots[i].fate = Some(Fate::Broken(e.to_string())),
        }
    }
    progressed
}

fn deliver<SM>(
    slots: &mut [Slot<SM>],
    sender: usize,
    mut out: Outgoing<SM::Msg>,
    tamper: Tamper<'_, SM::Msg>,
    traffic: &mut Traffic,
    next_id: &mut u64,
) where
    SM: StateMachine,
    SM::Output: Outcome,
    SM::Msg: Clone + Serialize,
{
    let from = PartyIndex::try_from(sender).expect("parties are bounded by u16");
    tamper(from, &mut out.msg);
    let size = serde_json::to_vec(&out.msg).map_or(0, |v| v.len() as u64);
    traffic.messages[sender] += 1;
    let (recipients, msg_type): (Vec<usize>, _) = match out.recipient {
        MessageDestination::AllParties => (
            (0..slots.len()).filter(|&j| j != sender).collect(),
            MessageType::Broadcast,
        ),
        MessageDestination::OneParty(j) => (vec![usize::from(j)], MessageType::P2P),
    };
    for j in recipients {
        let Some(slot) = slots.get_mut(j) else {
            continue;
        };
        traffic.bytes[sender] += size;
        *next_id += 1;
        slot.inbox.push_back(Incoming {
            id: *next_id,
            sender: from,
            msg_type,
            msg: out.msg.clone(),
        });
    }
}
