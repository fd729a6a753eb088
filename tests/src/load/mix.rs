//! What the load consists of: the scenarios and their weighted mix.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One kind of request the load generator sends, and the answer the API owes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `POST /v1/scores` with a valid token and body: 202.
    Single,
    /// `POST /v1/scores/batch` with `--batch-size` valid submissions: 202.
    Batch,
    /// A single submission whose token signature was tampered with: 401.
    InvalidToken,
    /// A single submission with a valid token and a body that fails validation: 400.
    InvalidBody,
    /// `GET /v1/leaderboards/{heroId}?limit=10` (all-time) with a valid token, over the heroes the
    /// submissions use: 200.
    Leaderboard,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Single,
        Scenario::Batch,
        Scenario::InvalidToken,
        Scenario::InvalidBody,
        Scenario::Leaderboard,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Single => "single",
            Scenario::Batch => "batch",
            Scenario::InvalidToken => "invalid-token",
            Scenario::InvalidBody => "invalid-body",
            Scenario::Leaderboard => "leaderboard",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The status the API must answer this scenario with; anything else counts as unexpected.
    pub fn expected_status(self) -> u16 {
        match self {
            Scenario::Single | Scenario::Batch => 202,
            Scenario::InvalidToken => 401,
            Scenario::InvalidBody => 400,
            Scenario::Leaderboard => 200,
        }
    }

    /// Whether the scenario reads (GET, no body) rather than submits.
    pub fn is_read(self) -> bool {
        self == Scenario::Leaderboard
    }

    /// The API path of request `index`, relative to the target's base path.
    pub fn path(self, index: u64) -> String {
        match self {
            Scenario::Batch => "/v1/scores/batch".to_owned(),
            Scenario::Leaderboard => format!(
                "/v1/leaderboards/{}?limit={LEADERBOARD_READ_ENTRIES}",
                hero_id(index)
            ),
            _ => "/v1/scores".to_owned(),
        }
    }

    /// Position in [`Scenario::ALL`], for per-scenario arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Heroes the generated submissions and leaderboard reads spread over.
pub const HEROES: u64 = 64;
/// Entries a generated leaderboard read asks for.
pub const LEADERBOARD_READ_ENTRIES: usize = 10;

/// The hero of generated request or submission `n`.
pub fn hero_id(n: u64) -> String {
    format!("hero-{}", n % HEROES)
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The default mix, as in the issue: mostly valid single submissions, some batches, and a share
/// of requests the API must refuse.
pub const DEFAULT_MIX: &str = "single=70,batch=10,invalid-token=10,invalid-body=10";

/// Largest weight one scenario may have (weights are relative, so this loses nothing).
pub const MAX_WEIGHT: u32 = 10_000;

/// Scenarios with relative weights, turned into a fixed, evenly interleaved schedule: request
/// `i` is `schedule[i % len]`. Deterministic, so a run of `len` requests has exactly the stated
/// proportions and two runs of the same plan send the same sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Scenario, u32)>,
    schedule: Vec<Scenario>,
}

impl Mix {
    /// Parses `name=weight,...`, e.g. `single=70,batch=10,invalid-token=10,invalid-body=10`.
    /// Scenarios left out get no requests; at least one weight must be positive.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let valid_names = || {
            Scenario::ALL
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut weights: Vec<(Scenario, u32)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').ok_or_else(|| {
                format!(
                    "`{part}` is not NAME=WEIGHT (for example single=70); names: {}",
                    valid_names()
                )
            })?;
            let scenario = Scenario::parse(name.trim()).ok_or_else(|| {
                format!(
                    "unknown scenario `{}`; known: {}",
                    name.trim(),
                    valid_names()
                )
            })?;
            let weight: u32 = weight.trim().parse().map_err(|_| {
                format!(
                    "the weight of {scenario} must be a whole number, not `{}`",
                    weight.trim()
                )
            })?;
            if weight > MAX_WEIGHT {
                return Err(format!(
                    "the weight of {scenario} is {weight}; weights are relative, use at most {MAX_WEIGHT}"
                ));
            }
            if weights.iter().any(|(s, _)| *s == scenario) {
                return Err(format!("{scenario} appears twice in the mix"));
            }
            weights.push((scenario, weight));
        }
        weights.retain(|(_, w)| *w > 0);
        if weights.is_empty() {
            return Err(format!(
                "the mix has no scenario with a positive weight (for example `{DEFAULT_MIX}`)"
            ));
        }
        weights.sort_by_key(|(s, _)| *s);
        let schedule = interleave(&weights);
        Ok(Self { weights, schedule })
    }

    /// Only this scenario.
    pub fn only(scenario: Scenario) -> Self {
        Self {
            weights: vec![(scenario, 1)],
            schedule: vec![scenario],
        }
    }

    /// The scenario of request number `index`.
    pub fn pick(&self, index: u64) -> Scenario {
        self.schedule[(index % self.schedule.len() as u64) as usize]
    }

    /// Scenarios with a positive weight, in [`Scenario::ALL`] order.
    pub fn weights(&self) -> &[(Scenario, u32)] {
        &self.weights
    }

    pub fn contains(&self, scenario: Scenario) -> bool {
        self.weights.iter().any(|(s, _)| *s == scenario)
    }

    /// Length of one full round of the schedule.
    pub fn period(&self) -> usize {
        self.schedule.len()
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(s, w)| format!("{s}={w}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Smooth weighted round robin (as nginx balances upstreams) over the weights reduced by their
/// greatest common divisor: each scenario appears exactly `weight` times per period, spread out
/// instead of in runs.
fn interleave(weights: &[(Scenario, u32)]) -> Vec<Scenario> {
    let divisor = weights.iter().fold(0, |g, (_, w)| gcd(g, *w));
    let reduced: Vec<(Scenario, i64)> = weights
        .iter()
        .map(|(s, w)| (*s, i64::from(w / divisor)))
        .collect();
    let total: i64 = reduced.iter().map(|(_, w)| w).sum();
    let mut current = vec![0i64; reduced.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, (_, w)) in current.iter_mut().zip(&reduced) {
            *c += w;
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .unwrap_or((0, &0));
        current[best] -= total;
        schedule.push(reduced[best].0);
    }
    schedule
}
