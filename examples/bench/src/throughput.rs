//! Closed-loop throughput: every contender of a workload is built once,
//! then measured in rounds, the order rotating each round so that drift on
//! a shared machine spreads evenly; the median round counts.

use std::collections::HashMap;
use std::sync::Arc;

use super::args::Options;
use super::contender::{BoxError, Contender, Kind, Shape, Work};
use super::run::{drive, median};

/// One workload's results: queries (or acquires) per second per round.
pub struct Table {
    pub title: String,
    pub work: Work,
    pub tasks: usize,
    pub kinds: Vec<Kind>,
    pub rounds: HashMap<Kind, Vec<f64>>,
}

impl Table {
    pub fn median(&self, kind: Kind) -> Option<f64> {
        self.rounds
            .get(&kind)
            .filter(|v| !v.is_empty())
            .map(|v| median(v))
    }

    /// Median of the per-round ratios `a / b` (both measured minutes apart
    /// at most, so machine drift cancels better than in a ratio of medians).
    pub fn paired_ratio(&self, a: Kind, b: Kind) -> Option<f64> {
        let (ra, rb) = (self.rounds.get(&a)?, self.rounds.get(&b)?);
        let ratios: Vec<f64> = ra.iter().zip(rb).map(|(x, y)| x / y).collect();
        (!ratios.is_empty()).then(|| median(&ratios))
    }
}

pub async fn measure(
    url: &str,
    title: String,
    work: Work,
    tasks: usize,
    kinds: &[Kind],
    opts: &Options,
) -> Result<Table, BoxError> {
    let shape = Shape::fixed(tasks as u32);
    let mut built = Vec::new();
    for &kind in kinds {
        let app = format!("bench-{}-{}", kind.tag(), tasks);
        let contender = Contender::build(kind, url, &app, shape, tasks)
            .await
            .map_err(|e| format!("building {}: {e}", kind.label()))?;
        built.push((kind, Arc::new(contender)));
    }
    let mut rounds: HashMap<Kind, Vec<f64>> = HashMap::new();
    for round in 0..opts.rounds {
        for i in 0..built.len() {
            let (kind, contender) = &built[(i + round) % built.len()];
            let sample = drive(contender, work, tasks, opts.warmup, opts.duration, false)
                .await
                .map_err(|e| format!("{} ({} tasks): {e}", kind.label(), tasks))?;
            rounds.entry(*kind).or_default().push(sample.per_sec());
        }
    }
    for (_, contender) in built {
        if let Ok(contender) = Arc::try_unwrap(contender) {
            contender.close().await;
        }
    }
    Ok(Table {
        title,
        work,
        tasks,
        kinds: kinds.to_vec(),
        rounds,
    })
}
