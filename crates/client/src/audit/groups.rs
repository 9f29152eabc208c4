//! Grouping what the nodes served: every checkpoint an endpoint served (its latest,
//! those of the sizes it was asked for) and the audit state's, parsed and grouped by
//! `(size, root)` with their signatures merged, and the cosigned reference picked.
//! Pure, like the rest of the judgement ([`super::judge`]).

use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint};
use bboard_merkle::Hash;

use super::judge::Observation;
use super::report::EndpointStatus;

/// Where a checkpoint came from: an endpoint's latest, an endpoint's checkpoint of a
/// size asked for ([`Observation::own`]), or the audit state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    Endpoint(usize),
    Own(usize),
    State,
}

/// All sources serving one `(size, root)`, with their signatures merged.
pub(super) struct Group {
    pub(super) merged: SignedCheckpoint,
    pub(super) sources: Vec<Source>,
    pub(super) cosigned: bool,
    /// Trusted node keys with a valid signature on the merged note.
    pub(super) signers: usize,
}

impl Group {
    pub(super) fn size(&self) -> u64 {
        self.merged.checkpoint().size.0
    }

    pub(super) fn root(&self) -> Hash {
        self.merged.checkpoint().root
    }

    /// The endpoints serving this checkpoint (as their latest or when asked for its
    /// size), each once, in order.
    pub(super) fn endpoints(&self) -> Vec<usize> {
        let mut endpoints = Vec::new();
        for source in &self.sources {
            if let Source::Endpoint(i) | Source::Own(i) = source {
                if !endpoints.contains(i) {
                    endpoints.push(*i);
                }
            }
        }
        endpoints
    }
}

/// Parsed observations, grouped.
#[derive(Default)]
pub(super) struct Analysis {
    /// Per endpoint: Ok(group index) or the endpoint status to report.
    pub(super) endpoint_groups: Vec<Result<usize, EndpointStatus>>,
    /// Per endpoint: its own signers.
    pub(super) endpoint_signers: Vec<Vec<String>>,
    /// Per endpoint: the groups of its checkpoints of the sizes asked for, with the
    /// size.
    pub(super) endpoint_own: Vec<Vec<(u64, usize)>>,
    /// Checkpoints served for a size asked for that are not valid checkpoints of that
    /// size of this board: `(endpoint index, size asked, reason)`.
    pub(super) own_invalid: Vec<(usize, u64, String)>,
    pub(super) groups: Vec<Group>,
    /// The cosigned reference: the largest cosigned group (most signers on ties).
    pub(super) reference: Option<usize>,
    /// Group of the audit state's checkpoint, when it still verifies.
    pub(super) previous: Option<usize>,
    pub(super) warnings: Vec<String>,
}

pub(super) fn analyse(
    policy: &CosignaturePolicy,
    previous: Option<&str>,
    observations: &[Observation],
) -> Analysis {
    let mut analysis = Analysis::default();
    for (i, observation) in observations.iter().enumerate() {
        analysis.add_latest(policy, i, observation);
        analysis.add_own(policy, i, observation);
    }
    analysis.previous = previous.and_then(|note| analysis.add_previous(policy, note));
    analysis.settle(policy);
    analysis
}

impl Analysis {
    /// Adds `signed` to the group of its checkpoint (a new one if none); returns the
    /// group's index.
    fn add(&mut self, signed: SignedCheckpoint, source: Source) -> usize {
        let groups = &mut self.groups;
        match groups
            .iter_mut()
            .position(|g| g.merged.checkpoint() == signed.checkpoint())
        {
            Some(i) => {
                // Same checkpoint: merge cannot fail.
                let _ = groups[i].merged.merge(&signed);
                groups[i].sources.push(source);
                i
            }
            None => {
                groups.push(Group {
                    merged: signed,
                    sources: vec![source],
                    cosigned: false,
                    signers: 0,
                });
                groups.len() - 1
            }
        }
    }

    /// The endpoint's latest checkpoint.
    fn add_latest(&mut self, policy: &CosignaturePolicy, i: usize, observation: &Observation) {
        let parsed = match &observation.note {
            Err(reason) => Err(EndpointStatus::Unreachable(reason.clone())),
            Ok(note) => parse_checkpoint(policy, note).map_err(EndpointStatus::Invalid),
        };
        match parsed {
            Ok(signed) => {
                self.endpoint_signers.push(trusted_signers(policy, &signed));
                let group = self.add(signed, Source::Endpoint(i));
                self.endpoint_groups.push(Ok(group));
            }
            Err(status) => {
                self.endpoint_signers.push(Vec::new());
                self.endpoint_groups.push(Err(status));
            }
        }
    }

    /// The endpoint's checkpoints of the sizes it was asked for.
    fn add_own(&mut self, policy: &CosignaturePolicy, i: usize, observation: &Observation) {
        let mut own_groups = Vec::new();
        for own in &observation.own {
            let note = match &own.note {
                Ok(note) => note,
                Err(reason) => {
                    self.warnings.push(format!(
                        "{}: its checkpoint of size {} could not be fetched ({reason}); what \
                         it signs at that size was not checked",
                        observation.endpoint, own.size
                    ));
                    continue;
                }
            };
            match parse_checkpoint(policy, note) {
                Ok(signed) if signed.checkpoint().size.0 != own.size => self.own_invalid.push((
                    i,
                    own.size,
                    format!("got a checkpoint of size {}", signed.checkpoint().size.0),
                )),
                Ok(signed) => {
                    own_groups.push((own.size, self.add(signed, Source::Own(i))));
                }
                Err(reason) => self.own_invalid.push((i, own.size, reason)),
            }
        }
        self.endpoint_own.push(own_groups);
    }

    /// The audit state's checkpoint, when it still verifies with the policy (an edited
    /// state file is ignored, with a warning).
    fn add_previous(&mut self, policy: &CosignaturePolicy, note: &str) -> Option<usize> {
        let checked = SignedCheckpoint::parse(note)
            .map_err(|e| e.to_string())
            .and_then(|s| policy.verify(&s).map(|_| s).map_err(|e| e.to_string()));
        match checked {
            Ok(signed) => Some(self.add(signed, Source::State)),
            Err(e) => {
                self.warnings.push(format!(
                    "the checkpoint in the audit state does not verify ({e}); ignored"
                ));
                None
            }
        }
    }

    /// Once every signature is merged: which groups are cosigned, and the reference.
    fn settle(&mut self, policy: &CosignaturePolicy) {
        for group in &mut self.groups {
            group.cosigned = policy.verify(&group.merged).is_ok();
            group.signers = trusted_signers(policy, &group.merged).len();
        }
        self.reference = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.cosigned)
            .max_by_key(|(_, g)| (g.size(), g.signers))
            .map(|(i, _)| i);
    }
}

/// Parses a note served as a checkpoint of this board.
pub(super) fn parse_checkpoint(
    policy: &CosignaturePolicy,
    note: &str,
) -> Result<SignedCheckpoint, String> {
    let signed = SignedCheckpoint::parse(note).map_err(|e| e.to_string())?;
    if signed.checkpoint().origin != policy.origin() {
        return Err(format!(
            "checkpoint of origin {:?}, expected {:?}",
            signed.checkpoint().origin,
            policy.origin()
        ));
    }
    Ok(signed)
}

/// The names of the policy's keys with a valid signature on `signed`.
pub(super) fn trusted_signers(
    policy: &CosignaturePolicy,
    signed: &SignedCheckpoint,
) -> Vec<String> {
    policy
        .keys()
        .iter()
        .filter(|k| signed.is_signed_by(k))
        .map(|k| k.name().to_string())
        .collect()
}
