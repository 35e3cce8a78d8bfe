//! Group commit for a single writer. On the embedded SQLite file every
//! write goes through one writer connection (`sqlite_single_writer`), so
//! concurrent `POST /items` would queue for it one statement and one commit
//! each. Instead they queue here: one task takes whatever has accumulated
//! (up to [`MAX_BATCH`]) and writes it as one multi-row `INSERT …
//! RETURNING` on the writer, one commit for all. A lone request is written
//! at once, alone; under load the batches grow by themselves.
//! BENCHMARKS.md, "The service under HTTP load", has the measurements.

use pool_runtime::Pool;
use tokio::sync::{mpsc, oneshot};

use super::error::ApiError;
use super::store::{Item, NewItem, Store};

/// Rows per statement at most (SQLite allows 32,766 bound values; two each).
pub const MAX_BATCH: usize = 256;

/// The queue of creates waiting for the writer.
pub struct Inserts {
    queue: mpsc::Sender<Pending>,
}

struct Pending {
    item: NewItem,
    reply: oneshot::Sender<Result<Item, ApiError>>,
}

impl Inserts {
    /// Starts the writing task on `pool` (its writer); it ends when the
    /// last `Inserts` handle is dropped.
    pub fn start<DB: Store>(pool: Pool<DB>) -> Self {
        let (queue, pending) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(write_batches(pool, pending));
        Self { queue }
    }

    /// Inserts `item` with whatever else is waiting; the row as stored.
    pub async fn insert(&self, item: NewItem) -> Result<Item, ApiError> {
        let (reply, answer) = oneshot::channel();
        let gone = || ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        self.queue
            .send(Pending { item, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn write_batches<DB: Store>(pool: Pool<DB>, mut pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let items: Vec<&NewItem> = batch.iter().map(|p| &p.item).collect();
        let written = DB::insert_many(&pool, &items).await.map_err(ApiError::from);
        match written {
            Ok(rows) => {
                for (waiting, row) in batch.drain(..).zip(rows) {
                    let _ = waiting.reply.send(Ok(row));
                }
            }
            // One statement: it failed for every row in it.
            Err(err) => {
                for waiting in batch.drain(..) {
                    let _ = waiting.reply.send(Err(err.clone()));
                }
            }
        }
    }
}
