//! A fixed pool of writer threads fed by one bounded queue.
//!
//! A job waits in the queue for the first free thread; a submit beyond the queue's bound waits
//! for room, so a caller that produces faster than the threads write is slowed down instead of
//! growing memory, and the number of threads never changes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

/// The work of one job, run on a writer thread.
pub(crate) type Work = Box<dyn FnOnce() -> Result<(), WriteError> + Send>;

/// Why a block file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WriteError {
    /// A file operation failed.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// What was being done (`create`, `write`, `sync`, `rename`, `look up`).
        operation: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The writer threads are gone (the job's thread panicked, or the pool was dropped).
    #[error("the writer threads stopped")]
    Stopped,
}

/// One job and where its result goes.
struct Job {
    work: Work,
    done: oneshot::Sender<Result<(), WriteError>>,
}

/// The pool: dropping it lets the threads finish the queued jobs and exit.
#[derive(Debug)]
pub(crate) struct Writers {
    queue: mpsc::Sender<Job>,
}

/// A submitted job's result, once its thread has run it.
pub(crate) struct Pending {
    done: oneshot::Receiver<Result<(), WriteError>>,
}

impl Writers {
    /// Starts `threads` threads (at least one) behind a queue of `bound` jobs (at least one).
    pub(crate) fn start(threads: usize, bound: usize) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>(bound.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..threads.max(1) {
            let jobs = Arc::clone(&jobs);
            // A failure here drops the sender, so the threads already started see the queue
            // closed and exit.
            std::thread::Builder::new()
                .name("block-files-writer".to_owned())
                .spawn(move || {
                    loop {
                        // One thread waits for the next job while the others write; the lock
                        // is released before the job runs, so a panicking job cannot poison it
                        // (and a poisoned lock still holds a usable receiver).
                        let next = jobs
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .blocking_recv();
                        let Some(job) = next else {
                            return;
                        };
                        // Nobody waiting for the result is no reason to stop.
                        let _ = job.done.send((job.work)());
                    }
                })?;
        }
        Ok(Self { queue })
    }

    /// Queues `work`, waiting for room while the queue is full.
    ///
    /// # Errors
    /// [`WriteError::Stopped`] when no thread is left to run it.
    pub(crate) async fn submit(&self, work: Work) -> Result<Pending, WriteError> {
        let (done, result) = oneshot::channel();
        self.queue
            .send(Job { work, done })
            .await
            .map_err(|_| WriteError::Stopped)?;
        Ok(Pending { done: result })
    }

    /// Queues `work` and waits for its result.
    ///
    /// # Errors
    /// The work's own error, or [`WriteError::Stopped`].
    pub(crate) async fn run(&self, work: Work) -> Result<(), WriteError> {
        self.submit(work).await?.finished().await
    }
}

impl Pending {
    /// Waits for the job to have run.
    ///
    /// # Errors
    /// The work's own error, or [`WriteError::Stopped`] when its thread died without an answer.
    pub(crate) async fn finished(self) -> Result<(), WriteError> {
        self.done.await.unwrap_or(Err(WriteError::Stopped))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::{Pin, pin};
    use std::sync::mpsc as std_mpsc;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use super::*;

    /// Polls once without a waker: whether the future is ready now.
    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// How long a test waits for a thread before it fails.
    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_full_queue_makes_the_next_submit_wait_until_a_thread_takes_a_job() -> anyhow::Result<()> {
        let writers = Writers::start(1, 2)?;
        let (started_tx, started) = std_mpsc::channel();
        let (release, released) = std_mpsc::channel::<()>();
        let blocker: Work = Box::new(move || {
            let _ = started_tx.send(());
            let _ = released.recv_timeout(WAIT);
            Ok(())
        });
        let first = pollster::block_on(writers.submit(blocker))?;
        // The only thread holds the first job: the queue is empty and has room for two.
        started.recv_timeout(WAIT)?;
        let second = pollster::block_on(writers.submit(Box::new(|| Ok(()))))?;
        let third = pollster::block_on(writers.submit(Box::new(|| Ok(()))))?;
        let mut fourth = pin!(writers.submit(Box::new(|| Ok(()))));
        assert!(
            poll_once(fourth.as_mut()).is_pending(),
            "a submit beyond the bound of two waits"
        );
        assert!(
            poll_once(fourth.as_mut()).is_pending(),
            "and keeps waiting while the thread is busy"
        );
        release.send(())?;
        // The thread takes the second job off the queue, which makes room for the fourth.
        let fourth = pollster::block_on(fourth)?;
        for pending in [first, second, third, fourth] {
            pollster::block_on(pending.finished())?;
        }
        Ok(())
    }

    #[test]
    fn every_thread_writes_at_once() -> anyhow::Result<()> {
        // Three jobs that each wait for the other two to have started finish only when three
        // threads run them at the same time.
        let writers = Writers::start(3, 1)?;
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let (sent, results) = std_mpsc::channel();
        let mut pending = Vec::new();
        for _ in 0..3 {
            let barrier = Arc::clone(&barrier);
            let sent = sent.clone();
            pending.push(pollster::block_on(writers.submit(Box::new(move || {
                barrier.wait();
                let _ = sent.send(());
                Ok(())
            })))?);
        }
        for _ in 0..3 {
            results.recv_timeout(WAIT)?;
        }
        for job in pending {
            pollster::block_on(job.finished())?;
        }
        Ok(())
    }

    #[test]
    fn a_failing_job_reports_its_error_and_the_pool_keeps_working() -> anyhow::Result<()> {
        let writers = Writers::start(1, 1)?;
        let failed = pollster::block_on(writers.run(Box::new(|| {
            Err(WriteError::Io {
                operation: "write",
                path: PathBuf::from("/nowhere"),
                source: std::io::Error::other("disk full"),
            })
        })));
        let Err(WriteError::Io {
            operation, path, ..
        }) = failed
        else {
            anyhow::bail!("expected the job's error, got {failed:?}");
        };
        assert_eq!((operation, path), ("write", PathBuf::from("/nowhere")));
        pollster::block_on(writers.run(Box::new(|| Ok(()))))?;
        Ok(())
    }

    #[test]
    fn a_job_that_panics_is_reported_as_stopped_and_the_others_go_on() -> anyhow::Result<()> {
        let writers = Writers::start(2, 1)?;
        let panicked = pollster::block_on(writers.run(Box::new(|| {
            #[allow(
                clippy::panic,
                reason = "a writer thread that dies is the case under test"
            )]
            {
                panic!("job failed")
            }
        })));
        assert!(matches!(panicked, Err(WriteError::Stopped)), "{panicked:?}");
        // The other thread still runs jobs.
        pollster::block_on(writers.run(Box::new(|| Ok(()))))?;
        Ok(())
    }
}
