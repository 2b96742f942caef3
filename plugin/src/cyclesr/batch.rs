//! Frames upscaled as batches, on the streaming thread or on a worker thread.
//!
//! With `overlap=true` a worker thread runs the network on one batch while the streaming thread
//! receives the next frames from upstream and pushes the previous batch downstream, so the
//! device is not idle while GStreamer moves buffers.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst_video::{VideoFrameRef, VideoInfo};

use super::frame::{frame_to_rgb, rgb_to_frame, upscale_alpha, Layout};
use crate::model::upscaler::{catch_torch, Upscaler};

/// What a batch needs to know of the negotiated caps.
#[derive(Clone, Debug)]
pub struct Formats {
    pub infos: (VideoInfo, VideoInfo),
    pub layouts: (Layout, Layout),
}

/// Input frames and the output buffers they are upscaled into (allocated by the streaming
/// thread, carrying their input's timestamps and metadata).
pub struct Batch {
    pub inputs: Vec<gst::Buffer>,
    pub outputs: Vec<gst::Buffer>,
    pub formats: Formats,
}

/// A processed batch.
pub struct Done {
    /// The filled output buffers, in input order (unusable when `result` is an error).
    pub outputs: Vec<gst::Buffer>,
    pub result: anyhow::Result<()>,
    /// Time of the forward pass and conversions.
    pub elapsed: Duration,
    /// Input frame size, for error messages.
    pub input_size: (u32, u32),
}

/// Upscales `inputs` in one forward pass of the network into `outputs`.
pub fn upscale_frames(
    upscaler: &Upscaler,
    (in_layout, out_layout): (Layout, Layout),
    inputs: &[&VideoFrameRef<&gst::BufferRef>],
    outputs: &mut [&mut VideoFrameRef<&mut gst::BufferRef>],
) -> anyhow::Result<()> {
    catch_torch(|| -> anyhow::Result<()> {
        let mut rgb = Vec::with_capacity(inputs.len());
        let mut alpha = Vec::with_capacity(inputs.len());
        for frame in inputs {
            let (colour, a) = frame_to_rgb(in_layout, frame, upscaler.device())?;
            rgb.push(colour);
            alpha.push(a);
        }
        let sr = upscaler.upscale(&tch::Tensor::cat(&rgb, 0));
        for (i, (frame, alpha)) in outputs.iter_mut().zip(&alpha).enumerate() {
            let alpha = alpha.as_ref().map(|a| upscale_alpha(a, upscaler.scale()));
            rgb_to_frame(
                out_layout,
                &sr.narrow(0, i as i64, 1),
                alpha.as_ref(),
                frame,
            )?;
        }
        Ok(())
    })
    .and_then(|r| r)
}

/// Runs one batch on the calling thread.
pub fn run(upscaler: &Mutex<Upscaler>, batch: Batch) -> Done {
    let Batch {
        inputs,
        mut outputs,
        formats,
    } = batch;
    let (in_info, out_info) = &formats.infos;
    let started = Instant::now();
    let result = (|| -> anyhow::Result<()> {
        let in_frames = inputs
            .iter()
            .map(|b| VideoFrameRef::from_buffer_ref_readable(b.as_ref(), in_info))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out_frames = outputs
            .iter_mut()
            .map(|b| VideoFrameRef::from_buffer_ref_writable(b.make_mut(), out_info))
            .collect::<Result<Vec<_>, _>>()?;
        let in_frames: Vec<_> = in_frames.iter().collect();
        let mut out_frames: Vec<_> = out_frames.iter_mut().collect();
        let upscaler = upscaler.lock().unwrap();
        upscale_frames(&upscaler, formats.layouts, &in_frames, &mut out_frames)
    })();
    Done {
        outputs,
        result,
        elapsed: started.elapsed(),
        input_size: (in_info.width(), in_info.height()),
    }
}

/// A thread that runs jobs (batches, in the element) in the order they are submitted, one at a
/// time.
pub struct Worker<Job: Send + 'static, Output: Send + 'static> {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Output>,
    thread: Option<JoinHandle<()>>,
    in_flight: usize,
}

/// The element's worker: batches in, processed batches out.
pub type BatchWorker = Worker<Batch, Done>;

impl BatchWorker {
    /// A worker running [`run`] with `upscaler`.
    pub fn upscaling(upscaler: Arc<Mutex<Upscaler>>) -> std::io::Result<BatchWorker> {
        Worker::spawn(move |batch| run(&upscaler, batch))
    }
}

impl<Job: Send + 'static, Output: Send + 'static> Worker<Job, Output> {
    pub fn spawn(mut process: impl FnMut(Job) -> Output + Send + 'static) -> std::io::Result<Self> {
        // One job queued behind the running one at most: the streaming thread then waits
        // instead of buffering frames without bound.
        let (jobs, job_receiver) = sync_channel::<Job>(1);
        let (done_sender, done) = sync_channel::<Output>(2);
        let thread = std::thread::Builder::new()
            .name("cyclesr-worker".into())
            .spawn(move || {
                for job in job_receiver {
                    if done_sender.send(process(job)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: 0,
        })
    }

    /// Queues a job; fails if the worker thread has ended (it panicked).
    pub fn submit(&mut self, job: Job) -> anyhow::Result<()> {
        let stopped = || anyhow::anyhow!("the inference thread has ended");
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).map_err(|_| stopped())?;
        self.in_flight += 1;
        Ok(())
    }

    /// Jobs submitted and not yet returned by [`Worker::wait`].
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The oldest job in flight, once done; `None` if none is in flight. Fails if the worker
    /// thread ended without answering.
    pub fn wait(&mut self) -> anyhow::Result<Option<Output>> {
        if self.in_flight == 0 {
            return Ok(None);
        }
        self.in_flight -= 1;
        match self.done.recv() {
            Ok(done) => Ok(Some(done)),
            Err(_) => {
                // Nothing more will come back.
                self.in_flight = 0;
                anyhow::bail!("the inference thread ended with a batch in flight")
            }
        }
    }
}

impl<Job: Send + 'static, Output: Send + 'static> Drop for Worker<Job, Output> {
    fn drop(&mut self) {
        // Closing the job channel ends the thread's loop once its current job is done.
        drop(self.jobs.take());
        while let Ok(Some(_)) = self.wait() {}
        if let Some(thread) = self.thread.take() {
            // A panic of the thread was already reported by `submit` or `wait`.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Worker;

    /// A worker whose thread panics on its second job.
    fn dying_worker() -> Worker<u32, u32> {
        Worker::spawn(|job: u32| {
            assert!(job < 2, "job {job} kills the worker");
            job * 10
        })
        .unwrap()
    }

    #[test]
    fn jobs_come_back_in_order() {
        let mut worker = dying_worker();
        worker.submit(0).unwrap();
        worker.submit(1).unwrap();
        assert_eq!(worker.in_flight(), 2);
        assert_eq!(worker.wait().unwrap(), Some(0));
        assert_eq!(worker.wait().unwrap(), Some(10));
        assert_eq!(worker.wait().unwrap(), None);
    }

    #[test]
    fn a_dead_thread_is_an_error_not_a_panic() {
        let mut worker = dying_worker();
        worker.submit(1).unwrap();
        worker.submit(5).unwrap();
        assert_eq!(worker.wait().unwrap(), Some(10));
        let e = worker.wait().unwrap_err();
        assert!(
            e.to_string().contains("ended with a batch in flight"),
            "{e}"
        );
        assert_eq!(worker.in_flight(), 0);
        // The thread is gone: a new job is refused, and dropping the worker joins it quietly.
        let e = worker.submit(0).unwrap_err();
        assert!(e.to_string().contains("has ended"), "{e}");
        drop(worker);
    }

    #[test]
    fn dropping_with_jobs_in_flight_after_a_panic_does_not_panic() {
        let mut worker = dying_worker();
        worker.submit(7).unwrap();
        // Dropped (as in the element's stop()) while the dead thread's answer is awaited.
        drop(worker);
    }
}
