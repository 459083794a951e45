//! Keeping bank hashes from being read back through screen answers: per-key answer detail, rate
//! limits and probing detection (issue 16, item 10; the reasoning is in docs/SECURITY.md).
//!
//! The attack: a key that may only screen sends a hash 20 bits from a banked PDQ, flips one bit
//! at a time and keeps the flips that shrink the reported distance: 257 screens give the banked
//! hash back. Hiding the distance is not enough on its own: a bare match/no-match is an oracle
//! too (walk to a point at exactly the threshold, then flip each bit in turn: the answer changes
//! exactly when that bit was wrong, 256 screens). So the defence has three parts, all here in the
//! core so that every edge (gRPC, HTTP `/v1`, HTTP HMA) applies the same rules:
//!
//! 1. **Detail** ([`redact`]): a key gets the distance only if its policy says `exact`; `band`
//!    gives strong/medium/weak, `confidence` (the `screen` role's default) a two-level
//!    confidence. Both turn the distance walk into a walk on a plateau: a one-bit step almost
//!    never changes the answer, so there is nothing to climb.
//! 2. **Rate** ([`Guard::admit`]): a token bucket per key (rate and burst from the key's policy,
//!    else the server's default), so that probing is slow as well as seen.
//! 3. **Probing detection** ([`Guard::observe`]): only queries that come near an active banked
//!    entry (within its threshold plus a margin, match or not: [`ScreenOptions::near_margin`])
//!    can tell anything about a banked hash, so only those are counted, per key, over a window.
//!    Identical queries are re-posts of one picture (normal traffic) and are never counted. Two
//!    rules fire:
//!    - *steps*: a distinct query within [`GuardConfig::step_radius`] bits (2 for PDQ) of one the
//!      key sent before is a step of a walk; bit-flipping attacks are made of nothing else, while
//!      different edits of one photo are rarely that close (re-encodes of one file are, but they
//!      are mostly identical or a couple of steps). [`GuardConfig::max_steps`] steps (8) fire.
//!      Both attacks of the issue need more than 8 one-bit steps before they learn anything: the
//!      boundary walk from 20 bits inside a 31-bit threshold needs 12 to reach the boundary, and
//!      under `confidence` detail the distance walk sees no change at all while it climbs.
//!    - *ball*: [`GuardConfig::max_ball`] (32) distinct queries within
//!      [`GuardConfig::ball_radius`] bits (16 for PDQ) of each other: an attacker who steps
//!      further than 2 bits to dodge the first rule (group tests) is caught by the count.
//!
//!    What firing does is the key's [`ProbeAction`]: an audit event and a metric always; by
//!    default (`withhold`) the key's answers within [`GuardConfig::fence_radius`] (64 bits of
//!    PDQ: past that a query is too far from any entry the probes were near for its answer to say
//!    anything of it) of the probed place are withheld for [`GuardConfig::fence`]: the query that
//!    fired and every later one there get PERMISSION_DENIED (kind `probing_withheld`), whatever
//!    the match would have been, so withholding is no oracle itself. `suspend` also suspends the
//!    key in the store. Answers elsewhere go on, so a platform that tripped the rule by accident
//!    (a banked picture's many re-encodes, see docs/SECURITY.md) loses answers only about that
//!    picture, and only for a while.
//!
//! The state lives in memory, per process: a restart forgets windows and fences (a suspension is
//! stored and stays), and each cluster replica counts the queries it answers.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::decision::{ScreenOptions, ScreenOutcome, margin_for};
use super::indexes::MatchKind;
use super::keypoint_vote::MIN_VOTES;
use super::live::{LiveBanks, ScreenError, ScreenedImage};
use crate::hashing::ImageHashes;
use crate::store::api_keys::{ApiKey, Detail, KeyPolicy, ProbeAction, Role};
use crate::store::{Algorithm, EntryHashes, HashValue};

/// Recent near-bank queries kept per key (older ones drop out early when a key screens more
/// than this within the window).
const MAX_SEEN: usize = 4096;
/// Fenced places kept per key.
const MAX_FENCES: usize = 256;

/// The server-wide settings of the guard (`vigie serve --key-rate ...`, see `config.rs`).
/// Radii are for PDQ (256 bits) and scaled to a 64-bit hash's width (a quarter, at least 1).
#[derive(Clone, Debug, PartialEq)]
pub struct GuardConfig {
    /// Default screens a second per key (0: no limit), for keys whose policy sets none.
    pub rate: u32,
    /// Default burst per key.
    pub burst: u32,
    /// How long a near-bank query counts toward detection.
    pub window: Duration,
    /// A distinct query within this many bits of an earlier one is a step of a walk.
    pub step_radius: u32,
    /// Steps within the window that fire.
    pub max_steps: u32,
    /// Radius of the ball rule.
    pub ball_radius: u32,
    /// Distinct queries within `ball_radius` of the current one (itself included) that fire.
    pub max_ball: u32,
    /// How far around a probed place answers are withheld.
    pub fence_radius: u32,
    /// How long answers there are withheld.
    pub fence: Duration,
    /// Bits beyond a bank's threshold within which a query counts as near the bank.
    pub near_margin: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            rate: 100,
            burst: 500,
            window: Duration::from_secs(3600),
            step_radius: 2,
            max_steps: 8,
            ball_radius: 16,
            max_ball: 32,
            fence_radius: 64,
            fence: Duration::from_secs(3600),
            near_margin: 8,
        }
    }
}

/// What one caller may see and do: its key's policy with the defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The key's name (what the guard's state and the audit trail are keyed by).
    pub key: String,
    /// How much a screen answer reveals.
    pub detail: Detail,
    /// Screens a second (0: no limit).
    pub rate: u32,
    /// Token bucket size (at least 1).
    pub burst: u32,
    /// What probing does.
    pub on_probe: ProbeAction,
    /// Whether the key is in the store (the audit trail and suspension need a record): false
    /// for the callers of `--insecure-no-auth` and the HTTP edge's key-less role.
    pub stored: bool,
}

impl Access {
    /// The access of a stored key under `config`.
    pub fn of(key: &ApiKey, config: &GuardConfig) -> Access {
        Access::of_key(&key.name, key.role, key.policy, config)
    }

    /// The access of the stored key `name` of `role` with its own `policy`, under `config`.
    pub fn of_key(name: &str, role: Role, policy: KeyPolicy, config: &GuardConfig) -> Access {
        Access {
            key: name.to_string(),
            detail: policy.detail.unwrap_or_else(|| Detail::default_for(role)),
            rate: policy.rate.unwrap_or(config.rate),
            burst: policy.burst.unwrap_or(config.burst).max(1),
            on_probe: policy
                .on_probe
                .unwrap_or_else(|| ProbeAction::default_for(role)),
            stored: true,
        }
    }

    /// The access of a caller without a stored key (named `name`) holding `role`: the role's
    /// defaults and the server's rate. `--insecure-no-auth` callers get
    /// [`Access::unrestricted`] instead.
    pub fn for_role(name: &str, role: Role, config: &GuardConfig) -> Access {
        Access {
            key: name.to_string(),
            detail: Detail::default_for(role),
            rate: config.rate,
            burst: config.burst.max(1),
            on_probe: ProbeAction::default_for(role),
            stored: false,
        }
    }

    /// Exact answers, no rate limit, no detection (`--insecure-no-auth`: local trials only).
    pub fn unrestricted(name: &str) -> Access {
        Access {
            key: name.to_string(),
            detail: Detail::Exact,
            rate: 0,
            burst: 1,
            on_probe: ProbeAction::Off,
            stored: false,
        }
    }
}

/// Why the guard refused a screen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The key's token bucket is empty: retry after `retry_after`.
    #[error("the key {key:?} is over its rate limit of {rate} screens a second (burst {burst}); retry after {} ms", retry_after.as_millis())]
    RateLimited {
        /// The key's name.
        key: String,
        /// Its rate.
        rate: u32,
        /// Its burst.
        burst: u32,
        /// When a token will be there.
        retry_after: Duration,
    },
    /// The query is near a place the key probed: its answer is withheld for `remaining`.
    #[error("answers near hashes this key probed are withheld for {}s (probing detected; see docs/SECURITY.md)", remaining.as_secs())]
    Withheld {
        /// The key's name.
        key: String,
        /// How long the fence stays.
        remaining: Duration,
    },
}

/// Why a guarded screen failed.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The screen itself failed.
    #[error(transparent)]
    Screen(#[from] ScreenError),
    /// The guard refused it.
    #[error(transparent)]
    Refused(Refusal),
}

/// Counts per key, for the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Times probing was detected (one per detection, not per query).
    pub probing_detected: u64,
    /// Screens whose answer was withheld.
    pub withheld: u64,
    /// Screens refused by the rate limit.
    pub rate_limited: u64,
}

/// What [`Guard::observe`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probing {
    /// `steps` or `ball`.
    pub rule: &'static str,
    /// The algorithm of the hash that fired.
    pub algorithm: Algorithm,
    /// Steps in the window.
    pub steps: u32,
    /// Distinct near queries within the ball radius.
    pub ball: u32,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Seen {
    at: Instant,
    hash: HashValue,
    step: bool,
}

#[derive(Default)]
struct KeyState {
    bucket: Option<Bucket>,
    seen: VecDeque<Seen>,
    fences: Vec<(Instant, HashValue)>,
    stats: KeyStats,
}

/// The guard's per-key state: token buckets, recent near-bank queries and fenced places. One per
/// server, shared by every edge.
pub struct Guard {
    config: GuardConfig,
    keys: Mutex<HashMap<String, KeyState>>,
}

/// Distance between two hashes of one algorithm; `None` across algorithms.
fn distance(a: &HashValue, b: &HashValue) -> Option<u32> {
    match (a, b) {
        (HashValue::Pdq(x), HashValue::Pdq(y)) => Some(x.distance(y)),
        (HashValue::Phash(x), HashValue::Phash(y)) | (HashValue::Dhash(x), HashValue::Dhash(y)) => {
            Some(x.distance(y))
        }
        _ => None,
    }
}

/// The hashes the guard watches of a query: its PDQ when it has one, else its pHash and dHash.
/// One algorithm is enough to see a walk (a probe moves every hash of a picture), and PDQ's 256
/// bits tell edits apart where a 64-bit hash does not: mild edits of one photo often share their
/// pHash or differ by a bit, which would look like steps.
fn watched(values: impl Iterator<Item = HashValue>) -> Vec<HashValue> {
    let all: Vec<HashValue> = values.filter(|v| v.algorithm().is_perceptual()).collect();
    if all.iter().any(|v| v.algorithm() == Algorithm::Pdq) {
        all.into_iter()
            .filter(|v| v.algorithm() == Algorithm::Pdq)
            .collect()
    } else {
        all
    }
}

/// The hashes of an upload the guard watches (upright, as displayed; see [`watched`]).
pub fn watched_image_hashes(h: &ImageHashes) -> Vec<HashValue> {
    watched(
        h.pdq
            .map(|p| HashValue::Pdq(p.hash))
            .into_iter()
            .chain(h.phash.map(HashValue::Phash))
            .chain(h.dhash.map(HashValue::Dhash)),
    )
}

/// The hashes of a client's hash set the guard watches (see [`watched`]).
pub fn watched_hashes(h: &EntryHashes) -> Vec<HashValue> {
    watched(h.iter())
}

/// A coarse strength of a match, from its calibrated confidence: what `band` detail reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    /// Confidence at least 0.9.
    Strong,
    /// Confidence at least 0.5.
    Medium,
    /// Below 0.5.
    Weak,
}

impl Band {
    /// The band of a confidence (0..=1).
    pub fn of(confidence: f64) -> Band {
        if confidence >= 0.9 {
            Band::Strong
        } else if confidence >= 0.5 {
            Band::Medium
        } else {
            Band::Weak
        }
    }

    /// The confidence reported for the band under `band` detail: its floor (0.9, 0.5, 0.1).
    pub fn floor(self) -> f64 {
        match self {
            Band::Strong => 0.9,
            Band::Medium => 0.5,
            Band::Weak => 0.1,
        }
    }

    /// `strong`, `medium` or `weak`.
    pub fn name(self) -> &'static str {
        match self {
            Band::Strong => "strong",
            Band::Medium => "medium",
            Band::Weak => "weak",
        }
    }
}

/// Hides what `detail` does not reveal, in place. Under `band` and `confidence` every match's
/// distance becomes 0 (the edges then leave it out or mark it hidden) and a keypoint match's vote
/// count becomes [`MIN_VOTES`] (64 minus the votes is its distance); the confidence becomes
/// the band's floor ([`Band::floor`]) under `band`, and 0.9 (at least 0.9) or 0.5 (below) under
/// `confidence`. The order of the matches (by confidence, then distance) is left as computed:
/// it says which entry matched best, not by how much.
pub fn redact(outcome: &mut ScreenOutcome, detail: Detail) {
    if detail == Detail::Exact {
        return;
    }
    outcome.distances_hidden = true;
    for m in &mut outcome.matches {
        m.distance = 0;
        if let MatchKind::Keypoints { votes, .. } = &mut m.how {
            *votes = MIN_VOTES;
        }
        m.confidence = match detail {
            Detail::Band => Band::of(m.confidence).floor(),
            _ if m.confidence >= 0.9 => 0.9,
            _ => 0.5,
        };
    }
}

impl Guard {
    /// A guard with `config`.
    pub fn new(config: GuardConfig) -> Guard {
        Guard {
            config,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The server-wide settings.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyState>> {
        // The state stays usable after a panic elsewhere: take it as it is.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts per key, sorted by key name.
    pub fn stats(&self) -> Vec<(String, KeyStats)> {
        let mut out: Vec<(String, KeyStats)> = self
            .lock()
            .iter()
            .map(|(k, s)| (k.clone(), s.stats.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Takes one token of `access`'s bucket at `now`. Errors: [`Refusal::RateLimited`] with the
    /// time until a token is back. A rate of 0 is no limit.
    pub fn admit(&self, access: &Access, now: Instant) -> Result<(), Refusal> {
        if access.rate == 0 {
            return Ok(());
        }
        let mut keys = self.lock();
        let state = keys.entry(access.key.clone()).or_default();
        let rate = f64::from(access.rate);
        let burst = f64::from(access.burst.max(1));
        let bucket = state.bucket.get_or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        state.stats.rate_limited += 1;
        let wait = (1.0 - bucket.tokens) / rate;
        Err(Refusal::RateLimited {
            key: access.key.clone(),
            rate: access.rate,
            burst: access.burst,
            retry_after: Duration::from_secs_f64(wait).max(Duration::from_millis(1)),
        })
    }

    /// Whether `hashes` fall in a place `access` probed (checked before the screen, so that
    /// withholding does not depend on the answer). Errors: [`Refusal::Withheld`].
    pub fn check_fences(
        &self,
        access: &Access,
        hashes: &[HashValue],
        now: Instant,
    ) -> Result<(), Refusal> {
        if access.on_probe == ProbeAction::Off {
            return Ok(());
        }
        let mut keys = self.lock();
        let Some(state) = keys.get_mut(&access.key) else {
            return Ok(());
        };
        state.fences.retain(|(until, _)| *until > now);
        let radius = |h: &HashValue| margin_for(self.config.fence_radius, h.algorithm().bits());
        let fenced = state.fences.iter().find(|(_, f)| {
            hashes
                .iter()
                .any(|h| distance(h, f).is_some_and(|d| d <= radius(h)))
        });
        if let Some((until, _)) = fenced {
            let remaining = until.saturating_duration_since(now);
            state.stats.withheld += 1;
            return Err(Refusal::Withheld {
                key: access.key.clone(),
                remaining,
            });
        }
        Ok(())
    }

    /// Counts a screened query of `access` (its watched `hashes`; `near_bank` from the screen's
    /// outcome) and says whether it fired a rule. Only near-bank queries count, identical ones
    /// once. When a rule fires and the key's action withholds, the query's place is fenced (the
    /// caller then withholds this answer too).
    pub fn observe(
        &self,
        access: &Access,
        hashes: &[HashValue],
        near_bank: bool,
        now: Instant,
    ) -> Option<Probing> {
        if access.on_probe == ProbeAction::Off || !near_bank {
            return None;
        }
        let c = &self.config;
        let mut keys = self.lock();
        let state = keys.entry(access.key.clone()).or_default();
        while state
            .seen
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.at) > c.window)
        {
            state.seen.pop_front();
        }
        let mut fired = None;
        for h in hashes {
            let bits = h.algorithm().bits();
            let (step_r, ball_r) = (
                margin_for(c.step_radius, bits),
                margin_for(c.ball_radius, bits),
            );
            let mut repost = false;
            let mut step = false;
            let mut ball = 1u32;
            for s in &state.seen {
                match distance(h, &s.hash) {
                    Some(0) => repost = true,
                    Some(d) => {
                        step |= d <= step_r;
                        if d <= ball_r {
                            ball += 1;
                        }
                    }
                    None => {}
                }
            }
            if repost {
                continue;
            }
            if state.seen.len() >= MAX_SEEN {
                state.seen.pop_front();
            }
            state.seen.push_back(Seen {
                at: now,
                hash: *h,
                step,
            });
            let steps = state.seen.iter().filter(|s| s.step).count() as u32;
            let rule = if steps >= c.max_steps {
                Some("steps")
            } else if ball >= c.max_ball {
                Some("ball")
            } else {
                None
            };
            if let Some(rule) = rule
                && fired.is_none()
            {
                fired = Some(Probing {
                    rule,
                    algorithm: h.algorithm(),
                    steps,
                    ball,
                });
            }
        }
        let probing = fired?;
        state.stats.probing_detected += 1;
        if matches!(
            access.on_probe,
            ProbeAction::Withhold | ProbeAction::Suspend
        ) {
            for h in hashes {
                if state.fences.len() >= MAX_FENCES {
                    state.fences.remove(0);
                }
                state.fences.push((now + c.fence, *h));
            }
            state.stats.withheld += 1;
        }
        // Start counting afresh: the next detection needs as much evidence as this one did.
        state.seen.clear();
        Some(probing)
    }

    /// Screens a client's hashes for `access`: rate limit not included (see [`Guard::admit`]),
    /// fences checked first, then the screen (with the near-bank margin when the key is watched),
    /// detection, and the answer cut to the key's detail. On detection the event is written to
    /// the audit trail (and the key suspended when its action says so). Errors: the screen's,
    /// or [`Refusal::Withheld`].
    pub fn screen_hashes(
        &self,
        banks: &LiveBanks,
        access: &Access,
        hashes: &EntryHashes,
        options: &ScreenOptions,
    ) -> Result<ScreenOutcome, GuardError> {
        let watched = watched_hashes(hashes);
        self.guarded(banks, access, &watched, options, |o| {
            Ok(banks.screen_hashes(hashes, o)?)
        })
    }

    /// Hashes and screens an uploaded picture for `access`, as [`Guard::screen_hashes`] does.
    pub fn screen_image(
        &self,
        banks: &LiveBanks,
        access: &Access,
        bytes: &[u8],
        options: &ScreenOptions,
    ) -> Result<ScreenedImage, GuardError> {
        let hashes = banks.hash_upload(bytes).map_err(ScreenError::from)?;
        let watched = watched_image_hashes(&hashes);
        let outcome = self.guarded(banks, access, &watched, options, |o| {
            Ok(banks.screen_image_hashes(&hashes, o)?)
        })?;
        Ok(ScreenedImage { hashes, outcome })
    }

    fn guarded(
        &self,
        banks: &LiveBanks,
        access: &Access,
        watched: &[HashValue],
        options: &ScreenOptions,
        screen: impl FnOnce(&ScreenOptions) -> Result<ScreenOutcome, ScreenError>,
    ) -> Result<ScreenOutcome, GuardError> {
        let now = Instant::now();
        self.check_fences(access, watched, now)
            .map_err(GuardError::Refused)?;
        let watching = access.on_probe != ProbeAction::Off && !watched.is_empty();
        let mut options = options.clone();
        options.near_margin = if watching { self.config.near_margin } else { 0 };
        let mut outcome = screen(&options)?;
        if watching && let Some(probing) = self.observe(access, watched, outcome.near_bank, now) {
            self.report(banks, access, &probing);
            if access.on_probe != ProbeAction::Audit {
                return Err(GuardError::Refused(Refusal::Withheld {
                    key: access.key.clone(),
                    remaining: self.config.fence,
                }));
            }
        }
        outcome.near_bank = false;
        redact(&mut outcome, access.detail);
        Ok(outcome)
    }

    /// The audit event (and suspension) of a detection. A failure to write it is logged: the
    /// answers are withheld in memory whatever the store says.
    fn report(&self, banks: &LiveBanks, access: &Access, probing: &Probing) {
        tracing::warn!(
            key = %access.key,
            rule = probing.rule,
            algorithm = probing.algorithm.name(),
            steps = probing.steps,
            ball = probing.ball,
            action = access.on_probe.name(),
            "probing near banked hashes detected"
        );
        if !access.stored {
            return;
        }
        let detail = serde_json::json!({
            "rule": probing.rule,
            "algorithm": probing.algorithm.name(),
            "steps": probing.steps,
            "ball": probing.ball,
            "action": access.on_probe.name(),
            "fence_secs": self.config.fence.as_secs(),
        });
        let suspend = access.on_probe == ProbeAction::Suspend;
        if let Err(e) = banks
            .store()
            .record_key_probing(&access.key, detail, suspend)
        {
            tracing::error!(key = %access.key, error = %e, "could not record probing in the audit trail");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::Bits;
    use crate::matcher::MatchInfo;
    use crate::store::BankKind;

    fn access(on_probe: ProbeAction) -> Access {
        Access {
            key: "k".into(),
            detail: Detail::Confidence,
            rate: 2,
            burst: 3,
            on_probe,
            stored: false,
        }
    }

    fn pdq(bytes: [u8; 32]) -> HashValue {
        let mut words = [0u64; 4];
        for (i, w) in words.iter_mut().enumerate() {
            *w = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
        }
        HashValue::Pdq(Bits(words))
    }

    fn flip(h: HashValue, bit: usize) -> HashValue {
        match h {
            HashValue::Pdq(Bits(mut w)) => {
                w[bit / 64] ^= 1 << (bit % 64);
                HashValue::Pdq(Bits(w))
            }
            other => other,
        }
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_says_when() {
        let guard = Guard::new(GuardConfig::default());
        let a = access(ProbeAction::Off);
        let t0 = Instant::now();
        for _ in 0..3 {
            guard.admit(&a, t0).unwrap();
        }
        let Err(Refusal::RateLimited { retry_after, .. }) = guard.admit(&a, t0) else {
            panic!("the fourth screen at once is over the burst");
        };
        assert!(
            retry_after > Duration::from_millis(400) && retry_after <= Duration::from_millis(500),
            "{retry_after:?}"
        );
        guard.admit(&a, t0 + Duration::from_millis(500)).unwrap();
        assert_eq!(guard.stats()[0].1.rate_limited, 1);
        let free = Access { rate: 0, ..a };
        for _ in 0..100 {
            guard.admit(&free, t0).unwrap();
        }
    }

    #[test]
    fn a_one_bit_walk_fires_the_step_rule_and_fences_the_place() {
        let guard = Guard::new(GuardConfig::default());
        let a = access(ProbeAction::Withhold);
        let t = Instant::now();
        let start = pdq([0x5a; 32]);
        let mut q = start;
        let mut fired_at = None;
        for i in 0..20 {
            q = flip(q, i * 7);
            if guard.observe(&a, &[q], true, t).is_some() {
                fired_at = Some(i + 1);
                break;
            }
        }
        // The first query has no neighbour; the next eight are steps.
        assert_eq!(fired_at, Some(9));
        assert!(matches!(
            guard.check_fences(&a, &[flip(start, 3)], t),
            Err(Refusal::Withheld { .. })
        ));
        // Far from the place, answers go on; after the fence time, there too.
        assert!(guard.check_fences(&a, &[pdq([0xa5; 32])], t).is_ok());
        let later = t + GuardConfig::default().fence + Duration::from_secs(1);
        assert!(guard.check_fences(&a, &[start], later).is_ok());
        assert_eq!(guard.stats()[0].1.probing_detected, 1);
    }

    #[test]
    fn reposts_far_queries_and_unwatched_keys_are_not_counted() {
        let guard = Guard::new(GuardConfig::default());
        let a = access(ProbeAction::Withhold);
        let t = Instant::now();
        let h = pdq([0x33; 32]);
        for _ in 0..100 {
            assert!(guard.observe(&a, &[h], true, t).is_none());
        }
        let mut q = h;
        for i in 0..50 {
            q = flip(q, i);
            assert!(
                guard.observe(&a, &[q], false, t).is_none(),
                "not near a bank"
            );
            assert!(
                guard
                    .observe(&access(ProbeAction::Off), &[q], true, t)
                    .is_none()
            );
        }
    }

    #[test]
    fn redaction_hides_distances_and_keypoint_votes() {
        let m = MatchInfo {
            bank: "b".into(),
            bank_kind: BankKind::Block,
            entry_id: 1,
            external_id: String::new(),
            label: String::new(),
            algorithm: Algorithm::Pdq,
            distance: 12,
            confidence: 0.97,
            how: MatchKind::Keypoints {
                votes: 30,
                mirrored: false,
            },
            suppressed: false,
        };
        let outcome = ScreenOutcome {
            matches: vec![m],
            matched: true,
            ..ScreenOutcome::default()
        };
        let mut exact = outcome.clone();
        redact(&mut exact, Detail::Exact);
        assert_eq!(exact, outcome);
        let mut band = outcome.clone();
        redact(&mut band, Detail::Band);
        assert_eq!(band.matches[0].distance, 0);
        assert_eq!(band.matches[0].keypoints(), MIN_VOTES);
        assert_eq!(Band::of(band.matches[0].confidence), Band::Strong);
        let mut coarse = outcome.clone();
        coarse.matches[0].confidence = 0.7;
        redact(&mut coarse, Detail::Confidence);
        assert_eq!(coarse.matches[0].confidence, 0.5);
        assert!(coarse.matched);
    }
}
