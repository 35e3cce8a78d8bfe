//! Drives N tasks against one contender for a warm-up plus a measured
//! window. Each task checks the clock itself (a task whose acquire never
//! has to wait may never yield, and then a timer could not stop it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::contender::{BoxError, Contender, OpError, Work};

/// What the tasks did inside the measured window.
#[derive(Debug, Default)]
pub struct Sample {
    pub ops: u64,
    pub window: Duration,
    pub timeouts: u64,
    /// Acquire waits in microseconds (only when asked for).
    pub waits_us: Vec<u32>,
}

impl Sample {
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.window.as_secs_f64()
    }
}

/// Runs `tasks` tasks doing `work` for `warmup + measure`; counts the
/// operations that started inside the measured window.
pub async fn drive(
    contender: &Arc<Contender>,
    work: Work,
    tasks: usize,
    warmup: Duration,
    measure: Duration,
    record_waits: bool,
) -> Result<Sample, BoxError> {
    let begin = Instant::now() + Duration::from_millis(2);
    let from = begin + warmup;
    let until = from + measure;
    let handles: Vec<_> = (0..tasks)
        .map(|idx| {
            let contender = Arc::clone(contender);
            tokio::spawn(async move {
                let mut own = contender.take_owned(idx);
                let mut out = Sample::default();
                let result = task(
                    &contender,
                    work,
                    &mut own,
                    from,
                    until,
                    record_waits,
                    &mut out,
                )
                .await;
                contender.put_owned(idx, own);
                result.map(|()| out)
            })
        })
        .collect();
    let mut total = Sample {
        window: measure,
        ..Sample::default()
    };
    let mut first_error = None;
    for handle in handles {
        match handle.await? {
            Ok(s) => {
                total.ops += s.ops;
                total.timeouts += s.timeouts;
                total.waits_us.extend(s.waits_us);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

async fn task(
    contender: &Contender,
    work: Work,
    own: &mut Option<sqlx::PgConnection>,
    from: Instant,
    until: Instant,
    record_waits: bool,
    out: &mut Sample,
) -> Result<(), BoxError> {
    loop {
        let start = Instant::now();
        if start >= until {
            return Ok(());
        }
        let counted = start >= from;
        match contender.op(work, own).await {
            Ok(waited) => {
                if counted {
                    out.ops += 1;
                    if record_waits {
                        out.waits_us
                            .push(waited.as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                }
            }
            Err(OpError::Timeout) => {
                if counted {
                    out.timeouts += 1;
                }
            }
            Err(OpError::Fatal(e)) => return Err(e),
        }
    }
}

/// The value at quantile `q` (0..=1) of sorted data.
pub fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * q).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Median of unsorted values.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
