//! The frame loop's view of the runtime: coefficient requests that never block, prefix plans
//! built on a worker thread, and swaps that happen only between frames.
//!
//! Protocol. [`Session::set_coefficients`] stores the request as the latest one (an older request
//! not yet picked up is replaced: the latest wins) and wakes the worker. The worker builds the
//! prefix plan off the frame path and publishes it only if its request is still the latest.
//! [`Session::run`] starts each frame by *trying* to take a published plan (`try_lock`: a frame
//! never waits for the worker), then runs the whole frame on the plan it holds, so every frame
//! sees exactly one coefficient set. Replaced plans go back to the worker to be freed, so the
//! frame thread does not pay for deallocating them; replaced run states are dropped on the frame
//! thread, which ran them (below). All-zero coefficients are served by the worker from the clean
//! prefix, without a build (only its run state is made, there too: nothing of tract's is set up
//! on the requesting thread). The worker keeps the last few built plans, so switching back to a
//! recent set costs no build.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::tract::Tract;
use crate::{Runtime, RuntimeError};

/// How many built plans the worker keeps for instant switch-backs.
const PLAN_CACHE: usize = 4;

/// A prefix plan and the coefficient set it was built for.
struct Prefix<B: Backend> {
    generation: u64,
    alphas: Arc<[f32]>,
    plan: Arc<B::Plan>,
}

/// A built plan and its run state, handed from the worker to the frame loop.
type Ready<B> = (Arc<Prefix<B>>, <B as Backend>::State);

struct State<B: Backend> {
    /// Generation of the latest request.
    requested: u64,
    /// The latest request not yet taken by the worker.
    pending: Option<(u64, Arc<[f32]>)>,
    /// A plan for `requested` with a run state for it, waiting for the next frame.
    ready: Option<Ready<B>>,
    /// Plans the frame loop replaced, freed by the worker.
    retired: Vec<Arc<Prefix<B>>>,
    shutdown: bool,
    stats: SessionStats,
}

impl<B: Backend> Default for State<B> {
    fn default() -> Self {
        State {
            requested: 0,
            pending: None,
            ready: None,
            retired: Vec::new(),
            shutdown: false,
            stats: SessionStats::default(),
        }
    }
}

/// Counters of a session's switching.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SessionStats {
    /// Coefficient requests made.
    pub requests: u64,
    /// Requests replaced by a newer one before the worker took them.
    pub coalesced: u64,
    /// Prefix plans built.
    pub builds: u64,
    /// Requests served from the worker's cache of recent plans or the clean prefix.
    pub reused: u64,
    /// Builds that finished after a newer request and were dropped.
    pub stale: u64,
    /// Builds that failed (the previous plan stays in use).
    pub failures: u64,
    pub last_error: Option<String>,
    /// Time of the last build, milliseconds.
    pub last_build_ms: f64,
}

struct Shared<B: Backend> {
    rt: Arc<Runtime<B>>,
    state: Mutex<State<B>>,
    wake: Condvar,
}

impl<B: Backend> Shared<B> {
    /// Locks the state, recovering it if a panicking thread poisoned the lock (the state is
    /// always left consistent between statements).
    fn lock(&self) -> MutexGuard<'_, State<B>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The result of one frame.
#[derive(Clone, Debug)]
pub struct FrameOutput {
    pub logits: Vec<f32>,
    /// Generation of the coefficient set the frame ran on (0: clean, before any request).
    pub generation: u64,
    /// The coefficients the frame ran on, one per signature.
    pub alphas: Arc<[f32]>,
    /// Time spent taking a new plan at the start of the frame (zero when none was ready).
    pub swap: Duration,
}

/// What a frame ran on, from [`Session::run_into`] (the logits went to the caller's buffer).
#[derive(Clone, Debug)]
pub struct FrameInfo {
    /// Generation of the coefficient set the frame ran on (0: clean, before any request).
    pub generation: u64,
    /// The coefficients the frame ran on, one per signature.
    pub alphas: Arc<[f32]>,
    /// Time spent taking a new plan at the start of the frame (zero when none was ready).
    pub swap: Duration,
}

/// A frame loop over a [`Runtime`]. Not `Sync`: one thread runs frames; any thread may hold a
/// [`Controller`] to change coefficients.
pub struct Session<B: Backend = Tract> {
    shared: Arc<Shared<B>>,
    current: Arc<Prefix<B>>,
    /// The backend's run states, kept across frames; the prefix's is replaced with the plan.
    prefix_state: B::State,
    suffix_state: Option<B::State>,
    worker: Option<JoinHandle<()>>,
}

/// A cloneable handle that requests coefficient changes from any thread.
pub struct Controller<B: Backend = Tract> {
    shared: Arc<Shared<B>>,
}

impl<B: Backend> Clone for Controller<B> {
    fn clone(&self) -> Self {
        Controller {
            shared: self.shared.clone(),
        }
    }
}

impl<B: Backend> Session<B> {
    /// Starts a session on the clean model and its worker thread.
    pub fn new(rt: Arc<Runtime<B>>) -> Result<Self, RuntimeError> {
        let n = rt.signatures().len();
        let clean = Arc::new(Prefix {
            generation: 0,
            alphas: vec![0f32; n].into(),
            plan: rt.clean_prefix().clone(),
        });
        let shared = Arc::new(Shared {
            rt,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let prefix_state = shared.rt.spawn(&clean.plan)?;
        let suffix_state = shared.rt.spawn_suffix()?;
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("rws-prefix".into())
            .spawn(move || worker(&worker_shared))
            .map_err(|e| RuntimeError::WorkerSpawn(e.to_string()))?;
        Ok(Session {
            shared,
            current: clean,
            prefix_state,
            suffix_state,
            worker: Some(worker),
        })
    }

    /// The runtime this session runs.
    pub fn runtime(&self) -> &Arc<Runtime<B>> {
        &self.shared.rt
    }

    /// A handle for changing coefficients from another thread.
    pub fn controller(&self) -> Controller<B> {
        Controller {
            shared: self.shared.clone(),
        }
    }

    /// Requests a coefficient set; see [`Controller::set_coefficients`].
    pub fn set_coefficients(&self, coeffs: &[(usize, f32)]) -> Result<u64, RuntimeError> {
        self.controller().set_coefficients(coeffs)
    }

    /// Runs one frame (`input` of the runtime's input shape) on one coefficient set: the newest
    /// finished one if the worker has published it, otherwise the one the last frame used.
    pub fn run(&mut self, input: &[f32]) -> Result<FrameOutput, RuntimeError> {
        let mut logits = Vec::new();
        let info = self.run_into(input, &mut logits)?;
        Ok(FrameOutput {
            logits,
            generation: info.generation,
            alphas: info.alphas,
            swap: info.swap,
        })
    }

    /// [`Session::run`] with the logits written to `logits` (reused from frame to frame: the
    /// frame loop's own work allocates nothing).
    pub fn run_into(
        &mut self,
        input: &[f32],
        logits: &mut Vec<f32>,
    ) -> Result<FrameInfo, RuntimeError> {
        let swap = self.take_ready()?;
        self.shared.rt.run_states(
            &mut self.prefix_state,
            self.suffix_state.as_mut(),
            input,
            logits,
        )?;
        Ok(FrameInfo {
            generation: self.current.generation,
            alphas: self.current.alphas.clone(),
            swap,
        })
    }

    /// Generation and coefficients of the plan the next frame would use if nothing new is ready.
    pub fn current(&self) -> (u64, Arc<[f32]>) {
        (self.current.generation, self.current.alphas.clone())
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        self.shared.lock().stats.clone()
    }

    /// Waits (off the frame path: tests, tools) until the latest request has been built or has
    /// failed, up to `timeout`. Returns whether a plan for it is ready or in use.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            {
                let st = self.shared.lock();
                let ready = st.ready.as_ref().map(|p| p.0.generation) == Some(st.requested)
                    || self.current.generation == st.requested;
                if ready {
                    return true;
                }
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn take_ready(&mut self) -> Result<Duration, RuntimeError> {
        let start = Instant::now();
        // try_lock: if the worker holds the lock this instant, this frame keeps its plan.
        let Ok(mut st) = self.shared.state.try_lock() else {
            return Ok(Duration::ZERO);
        };
        let Some((next, state)) = st.ready.take() else {
            return Ok(Duration::ZERO);
        };
        drop(st);
        let old = std::mem::replace(&mut self.current, next);
        // A run state is dropped on the thread that ran it: tract keeps per-thread scratch
        // space for each run state of a matrix-multiply node, keyed by the state, and frees it
        // only in the thread that drops the state. Dropped on the worker, every switch leaked
        // that scratch on this thread (about 3 KB per build on the demo model).
        drop(std::mem::replace(&mut self.prefix_state, state));
        // The old plan is freed by the worker, off the frame path (here only if the worker
        // holds the lock this instant).
        if let Ok(mut st) = self.shared.state.try_lock() {
            st.retired.push(old);
            drop(st);
            self.shared.wake.notify_one();
        }
        Ok(start.elapsed())
    }

    /// Ends the session from the frame thread without waiting for its worker: the run states
    /// (which must be dropped where they ran, see `take_ready`) are dropped here, and the
    /// returned closure joins the worker and frees its plans, on any thread.
    pub fn retire(mut self) -> impl FnOnce() + Send + 'static {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        let worker = self.worker.take();
        move || {
            if let Some(w) = worker {
                let _ = w.join();
            }
        }
    }
}

impl<B: Backend> Drop for Session<B> {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl<B: Backend> Controller<B> {
    /// Requests `(signature index, α)` pairs; signatures not named get α = 0, and a signature
    /// named twice has its coefficients summed. Returns the request's generation. Never waits
    /// for a build: the lock it takes is only ever held for a few field updates.
    pub fn set_coefficients(&self, coeffs: &[(usize, f32)]) -> Result<u64, RuntimeError> {
        let n = self.shared.rt.signatures().len();
        let mut alphas = vec![0f32; n];
        for &(index, alpha) in coeffs {
            if index >= n {
                return Err(RuntimeError::Coefficient {
                    index,
                    reason: format!("only {n} signatures are loaded"),
                });
            }
            if !alpha.is_finite() {
                return Err(RuntimeError::Coefficient {
                    index,
                    reason: format!("α = {alpha} is not finite"),
                });
            }
            alphas[index] += alpha;
        }
        let alphas: Arc<[f32]> = alphas.into();
        let mut st = self.shared.lock();
        st.requested += 1;
        st.stats.requests += 1;
        let generation = st.requested;
        if st.pending.is_some() {
            st.stats.coalesced += 1;
        }
        st.pending = Some((generation, alphas));
        drop(st);
        self.shared.wake.notify_one();
        Ok(generation)
    }
}

/// A recently built plan and the coefficients it was built for.
type Cached<B> = (Arc<[f32]>, Arc<<B as Backend>::Plan>);

fn worker<B: Backend>(shared: &Shared<B>) {
    let mut cache: VecDeque<Cached<B>> = VecDeque::new();
    loop {
        let (generation, alphas) = {
            let mut st = shared.lock();
            loop {
                st.retired.clear();
                if st.shutdown {
                    return;
                }
                if let Some(p) = st.pending.take() {
                    break p;
                }
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let start = Instant::now();
        // All zero: the clean prefix, kept once and never rebuilt (nor cached).
        let clean = Runtime::<B>::is_clean(&alphas);
        let cached = clean.then(|| shared.rt.clean_prefix().clone()).or_else(|| {
            cache
                .iter()
                .position(|(a, _)| same_bits(a, &alphas))
                .and_then(|i| cache.remove(i))
                .map(|(_, plan)| plan)
        });
        let (built, reused) = match cached {
            Some(plan) => (Ok(plan), true),
            None => (shared.rt.build_prefix(&alphas), false),
        };
        // The run state is made here too, so the frame thread only swaps pointers.
        let built = built.and_then(|plan| Ok((shared.rt.spawn(&plan)?, plan)));
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let mut st = shared.lock();
        match built {
            Ok((state, plan)) => {
                if reused {
                    st.stats.reused += 1;
                } else {
                    st.stats.builds += 1;
                    st.stats.last_build_ms = ms;
                }
                if !clean {
                    cache.push_front((alphas.clone(), plan.clone()));
                    cache.truncate(PLAN_CACHE);
                }
                if generation == st.requested {
                    let prefix = Prefix {
                        generation,
                        alphas,
                        plan,
                    };
                    st.ready = Some((Arc::new(prefix), state));
                } else {
                    st.stats.stale += 1;
                }
            }
            Err(e) => {
                log::warn!("prefix build failed, keeping the current weights: {e}");
                st.stats.failures += 1;
                st.stats.last_error = Some(e.to_string());
            }
        }
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
