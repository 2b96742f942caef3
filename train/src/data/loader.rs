//! The unpaired training loader.
//!
//! Batch `i` is a pure function of the decoded data, the seed and `i` (a fresh RNG per batch),
//! so a run resumed at iteration `i` sees exactly the batches it would have seen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context, Result};
use gstcyclesr::model::upscaler::catch_torch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::Tensor;

use super::imresize::imresize;
use super::paired::{check_pair_size, pair_by_name, shifted_overlap};
use super::source::{
    decode_video, is_image_file, list_images, load_rgb8_for_training, named_images, FrameRange,
    Rgb8,
};
use super::DataOptions;
use crate::degrade::{degrade, Degradation, DegradeManifest, Preset};

/// One training batch. `real_lr` and `hr` come from independent random draws: nothing pairs
/// them.
#[derive(Debug)]
pub struct UnpairedBatch {
    /// Its number (the iteration it was made for).
    pub index: u64,
    /// Real LR patches `[B, 3, p, p]`.
    pub real_lr: Tensor,
    /// Synthetic LR `[B, 3, p, p]`: `imresize(hr, 1/scale)`.
    pub syn_lr: Tensor,
    /// HR patches `[B, 3, p·scale, p·scale]`.
    pub hr: Tensor,
    /// Paired mode only: the true LR patch `[B, 3, p, p]` of each HR crop.
    pub paired_lr: Option<Tensor>,
}

/// Decoded images of both domains, shared read-only by the worker threads.
struct Dataset {
    hr: Vec<Rgb8>,
    pairing: Pairing,
    real_lr: Vec<Rgb8>,
    /// The `data.real_lr` entry each real LR image comes from (one camera each).
    real_lr_source: Vec<usize>,
    lr_patch: usize,
    scale: usize,
    batch: usize,
    augment_degraded: bool,
}

/// Where the paired oracle's LR comes from (the options allow one source at most).
enum Pairing {
    /// Not paired mode: HR crops only.
    Unpaired,
    /// `data.paired_lr`: the LR image of `hr[k]` at index k.
    Files(Vec<PairedLr>),
    /// `data.paired_preset`: each HR crop is degraded by a fresh draw of the preset.
    Online(Preset),
}

/// Makes batches `start_iteration, start_iteration + 1, ...` in order, `workers` threads ahead.
///
/// Images are decoded once, at construction, and kept in memory as 8-bit RGB. Images smaller
/// than a patch are skipped with a warning rather than padded: padding would teach the networks
/// flat borders that real frames do not have. Unreadable files and undecodable videos are
/// skipped with a warning too; a domain left empty is an error naming its sources.
pub struct Loader {
    dataset: Arc<Dataset>,
    seed: u64,
    start: u64,
    next: u64,
    /// Worker w makes batches start + w, start + w + workers, ...; reading the channels in
    /// turn restores the order.
    receivers: Vec<Receiver<Result<UnpairedBatch>>>,
    workers: Vec<JoinHandle<()>>,
    warnings: Vec<String>,
}

/// Both domains decoded, before any batch is made: enough to count epochs.
pub struct TrainingData {
    dataset: Arc<Dataset>,
    warnings: Vec<String>,
}

impl TrainingData {
    /// Decodes every source of `opts` (in `opts.workers` threads).
    pub fn load(opts: &DataOptions) -> Result<TrainingData> {
        opts.validate()?;
        let threads = opts.workers.max(1);
        let mut warnings = Vec::new();
        let lr_patch = opts.lr_patch as usize;
        let scale = opts.scale as usize;
        let (hr, pairing) = match (&opts.paired_lr, opts.paired_preset) {
            (Some(lr_dir), _) => {
                let (hr, lr) =
                    load_pairs(&opts.hr, lr_dir, lr_patch, scale, threads, &mut warnings)?;
                (hr, Pairing::Files(lr))
            }
            (None, preset) => {
                // An online pair is cut from a degraded crop with context around the patch.
                let context = if preset.is_some() { ONLINE_CONTEXT } else { 0 };
                let hr_crop = (lr_patch + context) * scale;
                let hr = load_hr(
                    &opts.hr,
                    opts.jpeg_downscale,
                    hr_crop,
                    threads,
                    &mut warnings,
                )?;
                (hr, preset.map_or(Pairing::Unpaired, Pairing::Online))
            }
        };
        let (real_lr, real_lr_source) = load_real_lr(opts, lr_patch, threads, &mut warnings)?;
        let dataset = Arc::new(Dataset {
            hr,
            pairing,
            real_lr,
            real_lr_source,
            lr_patch,
            scale,
            batch: opts.batch as usize,
            augment_degraded: opts.augment_degraded,
        });
        Ok(TrainingData { dataset, warnings })
    }

    /// HR images in use (paired mode: pairs).
    pub fn hr_images(&self) -> usize {
        self.dataset.hr.len()
    }

    /// Real LR images and frames in use.
    pub fn real_lr_images(&self) -> usize {
        self.dataset.real_lr.len()
    }

    /// The real LR images and frames of `data.real_lr` entry `source`, in order.
    pub fn real_lr_of(&self, source: usize) -> Vec<&Rgb8> {
        let ds = &self.dataset;
        ds.real_lr
            .iter()
            .zip(&ds.real_lr_source)
            .filter(|(_, &s)| s == source)
            .map(|(image, _)| image)
            .collect()
    }

    /// Non-overlapping HR training patches in the HR domain (what an epoch counts).
    pub fn hr_patches(&self) -> usize {
        let side = self.dataset.lr_patch * self.dataset.scale;
        self.dataset.hr.iter().map(|i| patches_in(i, side)).sum()
    }

    /// Non-overlapping LR training patches in the real LR domain.
    pub fn real_lr_patches(&self) -> usize {
        let side = self.dataset.lr_patch;
        self.dataset
            .real_lr
            .iter()
            .map(|i| patches_in(i, side))
            .sum()
    }

    /// `count` real LR patches `[count, 3, side, side]` of each `data.real_lr` source that has
    /// usable images (by source index), and `count` HR crops `[count, 3, side·scale,
    /// side·scale]` (whose bicubic↓ are the synthetic ones), drawn from `seed` apart from the
    /// training batches: what stage 1 is fitted on.
    pub fn fitting_patches(
        &self,
        seed: u64,
        count: usize,
        side: usize,
    ) -> Result<(Vec<(usize, Tensor)>, Tensor)> {
        let ds = &self.dataset;
        let side = side.min(ds.lr_patch);
        let mut rng = StdRng::seed_from_u64(batch_seed(seed, u64::MAX));
        catch_torch(|| {
            // Images are stored source by source: dedup leaves each source once, in order.
            let mut sources: Vec<usize> = ds.real_lr_source.clone();
            sources.dedup();
            let real = sources
                .iter()
                .map(|&source| {
                    let images: Vec<&Rgb8> = ds
                        .real_lr
                        .iter()
                        .zip(&ds.real_lr_source)
                        .filter(|(_, &s)| s == source)
                        .map(|(image, _)| image)
                        .collect();
                    let patches: Vec<Tensor> = (0..count)
                        .map(|_| {
                            random_crop(images[rng.random_range(0..images.len())], side, &mut rng)
                        })
                        .collect();
                    (source, Tensor::stack(&patches, 0))
                })
                .collect();
            let hr_side = side * ds.scale;
            let hr: Vec<Tensor> = (0..count)
                .map(|_| random_crop(&ds.hr[rng.random_range(0..ds.hr.len())], hr_side, &mut rng))
                .collect();
            (real, Tensor::stack(&hr, 0))
        })
    }
}

/// A random `side × side` crop `[3, side, side]` of `image` (at least that large).
fn random_crop(image: &Rgb8, side: usize, rng: &mut StdRng) -> Tensor {
    let y = rng.random_range(0..=image.height - side);
    let x = rng.random_range(0..=image.width - side);
    image.crop_tensor(y, x, side, side)
}

impl Loader {
    pub fn new(opts: &DataOptions, seed: u64, start_iteration: u64) -> Result<Loader> {
        Loader::start(TrainingData::load(opts)?, opts, seed, start_iteration)
    }

    /// Starts the worker threads on data already decoded.
    pub fn start(
        data: TrainingData,
        opts: &DataOptions,
        seed: u64,
        start_iteration: u64,
    ) -> Result<Loader> {
        let TrainingData { dataset, warnings } = data;
        let mut receivers = Vec::new();
        let mut workers = Vec::new();
        let count = opts.workers as u64;
        for w in 0..count {
            let (sender, receiver) = sync_channel(opts.prefetch.div_ceil(opts.workers));
            let dataset = Arc::clone(&dataset);
            let handle = std::thread::Builder::new()
                .name(format!("cyclesr-data-{w}"))
                .spawn(move || {
                    let mut index = start_iteration + w;
                    // Ends when the loader drops its receivers.
                    while sender.send(make_batch(&dataset, seed, index)).is_ok() {
                        index += count;
                    }
                })
                .context("starting a data worker thread")?;
            receivers.push(receiver);
            workers.push(handle);
        }
        Ok(Loader {
            dataset,
            seed,
            start: start_iteration,
            next: start_iteration,
            receivers,
            workers,
            warnings,
        })
    }

    /// The next batch, in order.
    pub fn next_batch(&mut self) -> Result<UnpairedBatch> {
        let index = self.next;
        let batch = if self.receivers.is_empty() {
            make_batch(&self.dataset, self.seed, index)
        } else {
            let worker = ((index - self.start) % self.receivers.len() as u64) as usize;
            self.receivers[worker]
                .recv()
                .map_err(|_| anyhow!("data worker thread {worker} stopped"))?
        }
        .with_context(|| format!("making batch {index}"))?;
        self.next += 1;
        Ok(batch)
    }

    /// HR images in use (paired mode: pairs).
    pub fn hr_images(&self) -> usize {
        self.dataset.hr.len()
    }

    /// Real LR images and frames in use.
    pub fn real_lr_images(&self) -> usize {
        self.dataset.real_lr.len()
    }

    /// What was skipped while loading (also printed on stderr).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("hr_images", &self.hr_images())
            .field("real_lr_images", &self.real_lr_images())
            .field(
                "pairing",
                &match &self.dataset.pairing {
                    Pairing::Unpaired => "unpaired".to_string(),
                    Pairing::Files(pairs) => format!("{} pairs of files", pairs.len()),
                    Pairing::Online(preset) => format!("online, preset {preset:?}"),
                },
            )
            .field("seed", &self.seed)
            .field("next", &self.next)
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Dropping the receivers makes every worker's next send fail, so they exit.
        self.receivers.clear();
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

/// Non-overlapping `side × side` patches in `image`.
fn patches_in(image: &Rgb8, side: usize) -> usize {
    (image.height / side) * (image.width / side)
}

fn warn(warnings: &mut Vec<String>, message: String) {
    eprintln!("warning: {message}");
    warnings.push(message);
}

/// The seed of batch `index`: splitmix64 of the two, so neighbouring indices and seeds give
/// unrelated streams.
fn batch_seed(seed: u64, index: u64) -> u64 {
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    splitmix(seed ^ splitmix(index))
}

/// A random element of the dihedral group (flips and transposition) applied to a square patch.
struct Augment {
    hflip: bool,
    vflip: bool,
    transpose: bool,
}

impl Augment {
    fn random(rng: &mut StdRng) -> Augment {
        Augment {
            hflip: rng.random_bool(0.5),
            vflip: rng.random_bool(0.5),
            transpose: rng.random_bool(0.5),
        }
    }

    /// This augmentation when `enabled`, else the identity (the random draws are made either
    /// way, so batches stay comparable between the two settings).
    fn only_if(self, enabled: bool) -> Augment {
        if enabled {
            self
        } else {
            Augment {
                hflip: false,
                vflip: false,
                transpose: false,
            }
        }
    }

    /// `[3, p, p]` → `[3, p, p]`.
    fn apply(&self, patch: Tensor) -> Tensor {
        let patch = if self.hflip { patch.flip([2]) } else { patch };
        let patch = if self.vflip { patch.flip([1]) } else { patch };
        if self.transpose {
            patch.transpose(1, 2)
        } else {
            patch
        }
    }
}

/// The LR half of a true pair, with the pixel shift its degradation applied.
struct PairedLr {
    image: Rgb8,
    /// `(dy, dx)` in HR pixels, from `degradation.json` (see [`Degradation::shift`]): the LR
    /// crop at `(y, x)` shows the HR scene from `(y·s − dy, x·s − dx)`. Zero without a manifest.
    shift: (i64, i64),
    /// LR crop origins `y` and `x` (inclusive ranges) whose shifted HR crop stays inside the HR
    /// image, found once at loading ([`paired_crop_range`]).
    rows: (usize, usize),
    cols: (usize, usize),
}

impl PairedLr {
    /// The HR crop origin showing the scene of the LR crop at `(y, x)`.
    fn hr_origin(&self, (y, x): (usize, usize), scale: usize) -> (usize, usize) {
        let shifted = |lr: usize, shift: i64| ((lr * scale) as i64 - shift) as usize;
        (shifted(y, self.shift.0), shifted(x, self.shift.1))
    }
}

/// The LR crop origins along one axis whose shifted HR crop stays inside the HR image, as an
/// inclusive range; `None` if there is none.
fn paired_crop_range(
    shift: i64,
    lr_len: usize,
    hr_len: usize,
    patch: usize,
    scale: usize,
) -> Option<(usize, usize)> {
    let overlap = shifted_overlap(shift, lr_len as i64, hr_len as i64, scale as i64)?;
    let last = overlap.lr_origin + overlap.len - patch as i64;
    (last >= overlap.lr_origin).then_some((overlap.lr_origin as usize, last as usize))
}

/// LR pixels of context around an online pair's patch in its degraded crop: at least
/// `ONLINE_BORDER` on each side (16 HR px at ×4: the resampling taps' 8 and the presets'
/// blurs, whose weight lies within about 8 HR px), so the crop's replicated edges stay
/// outside the patch, and 17 positions of the patch in the crop, so codec blocks (8 and 16
/// px) fall at every phase, as in a random crop of a whole frame.
const ONLINE_CONTEXT: usize = 24;
const ONLINE_BORDER: usize = 4;

/// An aligned pair `(hr [3, p·s, p·s], lr [3, p, p])` from a random crop of `image`, degraded
/// by a fresh draw of `preset` without its shift.
fn online_pair(
    image: &Rgb8,
    preset: Preset,
    p: usize,
    s: usize,
    rng: &mut StdRng,
) -> Result<(Tensor, Tensor)> {
    let crop = random_crop(image, (p + ONLINE_CONTEXT) * s, rng);
    let degradation = Degradation {
        shift: (0, 0),
        ..preset.sample(s as i64, rng)
    };
    let lr = degrade(&crop, &degradation, rng.random())
        .with_context(|| format!("data.paired_preset: degrading a patch by {degradation:?}"))?;
    let positions = ONLINE_BORDER..=ONLINE_CONTEXT - ONLINE_BORDER;
    let (y, x) = (
        rng.random_range(positions.clone()),
        rng.random_range(positions),
    );
    let hr =
        crop.narrow(1, (y * s) as i64, (p * s) as i64)
            .narrow(2, (x * s) as i64, (p * s) as i64);
    Ok((hr, lr.crop_tensor(y, x, p, p)))
}

fn make_batch(ds: &Dataset, seed: u64, index: u64) -> Result<UnpairedBatch> {
    catch_torch(|| -> Result<UnpairedBatch> {
        let mut rng = StdRng::seed_from_u64(batch_seed(seed, index));
        let (p, s) = (ds.lr_patch, ds.scale);
        let mut hr = Vec::with_capacity(ds.batch);
        let mut paired = Vec::new();
        let mut real = Vec::with_capacity(ds.batch);
        for _ in 0..ds.batch {
            let k = rng.random_range(0..ds.hr.len());
            let image = &ds.hr[k];
            let augment = Augment::random(&mut rng);
            match &ds.pairing {
                Pairing::Files(lr_images) => {
                    // Crop on the LR grid so the HR crop covers exactly the same scene.
                    let pair = &lr_images[k];
                    let y = rng.random_range(pair.rows.0..=pair.rows.1);
                    let x = rng.random_range(pair.cols.0..=pair.cols.1);
                    let (hy, hx) = pair.hr_origin((y, x), s);
                    let augment = augment.only_if(ds.augment_degraded);
                    hr.push(augment.apply(image.crop_tensor(hy, hx, p * s, p * s)));
                    paired.push(augment.apply(pair.image.crop_tensor(y, x, p, p)));
                }
                &Pairing::Online(preset) => {
                    let (hr_patch, lr_patch) = online_pair(image, preset, p, s, &mut rng)?;
                    let augment = augment.only_if(ds.augment_degraded);
                    hr.push(augment.apply(hr_patch));
                    paired.push(augment.apply(lr_patch));
                }
                Pairing::Unpaired => hr.push(augment.apply(random_crop(image, p * s, &mut rng))),
            }
            // The real LR domain: its own image, crop and augmentation.
            let image = &ds.real_lr[rng.random_range(0..ds.real_lr.len())];
            let patch = random_crop(image, p, &mut rng);
            let augment = Augment::random(&mut rng).only_if(ds.augment_degraded);
            real.push(augment.apply(patch));
        }
        let hr = Tensor::stack(&hr, 0);
        Ok(UnpairedBatch {
            index,
            real_lr: Tensor::stack(&real, 0),
            syn_lr: imresize(&hr, 1.0 / s as f64),
            hr,
            paired_lr: (!paired.is_empty()).then(|| Tensor::stack(&paired, 0)),
        })
    })?
}

/// Runs `job` over `items` on `threads` threads; results in the order of `items`.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    job: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return done;
                        };
                        done.push((i, job(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The unpaired HR domain: every image in the folders, at least `patch` (the HR crop a
/// training patch is cut from) on each side.
fn load_hr(
    folders: &[PathBuf],
    jpeg_downscale: bool,
    patch: usize,
    threads: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<Rgb8>> {
    if folders.is_empty() {
        bail!("data.hr lists no HR folders");
    }
    let mut files = Vec::new();
    for folder in folders {
        files.extend(list_images(folder).context("data.hr")?);
    }
    if files.is_empty() {
        bail!("empty HR domain: no images found in {}", describe(folders));
    }
    let loaded = parallel_map(&files, threads, |path| {
        load_rgb8_for_training(path, jpeg_downscale)
    });
    let mut images = Vec::new();
    for (path, image) in files.iter().zip(loaded) {
        match image {
            Err(e) => warn(warnings, format!("skipping {}: {e:#}", path.display())),
            Ok(img) if img.height < patch || img.width < patch => warn(
                warnings,
                format!(
                    "skipping {}: {}x{} is smaller than the {patch}x{patch} HR crop",
                    path.display(),
                    img.width,
                    img.height
                ),
            ),
            Ok(img) => images.push(img),
        }
    }
    if images.is_empty() {
        bail!(
            "empty HR domain: none of the {} images in {} is usable (see the warnings)",
            files.len(),
            describe(folders)
        );
    }
    Ok(images)
}

/// What to decode for the real LR domain.
enum Job {
    Image(PathBuf),
    Video(PathBuf, FrameRange),
}

/// The real LR images, each with the index of its `data.real_lr` source.
fn load_real_lr(
    opts: &DataOptions,
    patch: usize,
    threads: usize,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Rgb8>, Vec<usize>)> {
    if opts.real_lr.is_empty() {
        bail!("data.real_lr lists no real LR sources");
    }
    let mut jobs = Vec::new();
    for (source, spec) in opts.real_lr.iter().enumerate() {
        let range = spec.range();
        let path = &spec.path;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("data.real_lr: cannot access {}", path.display()))?;
        if meta.is_dir() || is_image_file(path) {
            // For stills, the frame range indexes the sorted file list.
            let files = list_images(path).context("data.real_lr")?;
            jobs.extend(
                files
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| range.contains(*i as u64))
                    .map(|(_, f)| (source, Job::Image(f))),
            );
        } else {
            jobs.push((source, Job::Video(path.clone(), range)));
        }
    }
    let sources = || {
        describe(
            &opts
                .real_lr
                .iter()
                .map(|s| s.path.clone())
                .collect::<Vec<_>>(),
        )
    };
    if jobs.is_empty() {
        bail!("empty real LR domain: no images found in {}", sources());
    }
    let loaded = parallel_map(&jobs, threads, |(_, job)| match job {
        // Real LR stills keep their artefacts: they are the degradation to learn.
        Job::Image(path) => load_rgb8_for_training(path, false).map(|img| vec![img]),
        Job::Video(path, range) => decode_video(path, *range),
    });
    let (mut images, mut image_sources) = (Vec::new(), Vec::new());
    for ((source, job), frames) in jobs.iter().zip(loaded) {
        let (path, kind) = match job {
            Job::Image(p) => (p, "image"),
            Job::Video(p, _) => (p, "video"),
        };
        match frames {
            Err(e) => warn(
                warnings,
                format!("skipping {kind} {}: {e:#}", path.display()),
            ),
            Ok(frames) if frames.is_empty() => warn(
                warnings,
                format!("skipping {kind} {}: no frame in the range", path.display()),
            ),
            Ok(frames) => {
                let before = frames.len();
                let usable: Vec<_> = frames
                    .into_iter()
                    .filter(|f| f.height >= patch && f.width >= patch)
                    .collect();
                if usable.len() < before {
                    warn(
                        warnings,
                        format!(
                            "skipping {} of {before} frame(s) of {kind} {}: smaller than the \
                             {patch}x{patch} LR patch",
                            before - usable.len(),
                            path.display()
                        ),
                    );
                }
                image_sources.extend(std::iter::repeat_n(*source, usable.len()));
                images.extend(usable);
            }
        }
    }
    if images.is_empty() {
        bail!(
            "empty real LR domain: nothing usable in {} (see the warnings)",
            sources()
        );
    }
    Ok((images, image_sources))
}

/// Paired mode: HR images and their LR counterparts, matched by name, index for index.
fn load_pairs(
    hr_folders: &[PathBuf],
    lr_dir: &Path,
    patch: usize,
    scale: usize,
    threads: usize,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Rgb8>, Vec<PairedLr>)> {
    let mut hr_named = std::collections::BTreeMap::new();
    for folder in hr_folders {
        for (name, path) in named_images(folder).context("data.hr")? {
            if let Some(previous) = hr_named.insert(name.clone(), path.clone()) {
                bail!(
                    "data.hr: {} and {} both have the name '{name}'",
                    previous.display(),
                    path.display()
                );
            }
        }
    }
    let lr_named = named_images(lr_dir).context("data.paired_lr")?;
    let pairs = pair_by_name(&lr_named, &hr_named, lr_dir, &describe(hr_folders))?;
    if pairs.is_empty() {
        bail!(
            "empty paired domain: no images in {} and {}",
            lr_dir.display(),
            describe(hr_folders)
        );
    }
    let shifts = pair_shifts(lr_dir, scale)?;
    if shifts.is_some() {
        eprintln!("paired mode: aligning each pair by the shifts `train degrade` recorded");
    }
    let loaded = parallel_map(&pairs, threads, |(_, lr, hr)| {
        Ok::<_, anyhow::Error>((
            load_rgb8_for_training(lr, false)?,
            load_rgb8_for_training(hr, false)?,
        ))
    });
    let (mut hr_images, mut lr_images) = (Vec::new(), Vec::new());
    for ((name, lr_path, hr_path), pair) in pairs.iter().zip(loaded) {
        match pair {
            Err(e) => warn(warnings, format!("skipping pair '{name}': {e:#}")),
            Ok((lr, hr)) => {
                check_pair_size(&lr, &hr, scale)
                    .with_context(|| format!("{} and {}", lr_path.display(), hr_path.display()))?;
                let shift = match &shifts {
                    None => (0, 0),
                    Some(shifts) => *shifts.get(name).ok_or_else(|| {
                        anyhow!(
                            "{}: '{name}' is not in the degradation.json beside it",
                            lr_path.display()
                        )
                    })?,
                };
                let rows = paired_crop_range(shift.0, lr.height, hr.height, patch, scale);
                let cols = paired_crop_range(shift.1, lr.width, hr.width, patch, scale);
                let Some((rows, cols)) = rows.zip(cols) else {
                    warn(
                        warnings,
                        format!(
                            "skipping {}: {}x{} has no {patch}x{patch} LR patch whose HR crop, \
                             shifted by {shift:?}, stays inside the HR image",
                            lr_path.display(),
                            lr.width,
                            lr.height
                        ),
                    );
                    continue;
                };
                hr_images.push(hr);
                lr_images.push(PairedLr {
                    image: lr,
                    shift,
                    rows,
                    cols,
                });
            }
        }
    }
    if hr_images.is_empty() {
        bail!(
            "empty paired domain: no usable pair in {} and {} (see the warnings)",
            lr_dir.display(),
            describe(hr_folders)
        );
    }
    Ok((hr_images, lr_images))
}

/// Per-image pixel shifts of a paired LR folder written by `train degrade`, read from the
/// `degradation.json` in the folder above it (`train degrade --out DIR` writes DIR/lr and
/// DIR/degradation.json). The oracle trains on pairs aligned by them (a shift drawn per image,
/// as in the `wild` presets, cannot be learnt, and taught as it is it blurs the output), and
/// the stage-1 report of `train eval` compares G_s2r's output with the real LR by them. `None`
/// without such a file (pairs are then taken as aligned).
pub(super) fn pair_shifts(
    lr_dir: &Path,
    scale: usize,
) -> Result<Option<HashMap<String, (i64, i64)>>> {
    let Some(path) = lr_dir.parent().map(|d| d.join("degradation.json")) else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    let context = || {
        format!(
            "reading the pixel shifts of the pairs in {} from {}",
            lr_dir.display(),
            path.display()
        )
    };
    let text = std::fs::read_to_string(&path).with_context(context)?;
    let manifest: DegradeManifest = serde_json::from_str(&text).with_context(context)?;
    if manifest.scale != scale as i64 {
        bail!(
            "{}: scale {} but data.scale is {scale}",
            path.display(),
            manifest.scale
        );
    }
    Ok(Some(
        manifest
            .images
            .into_iter()
            .map(|r| {
                let shift = r.shift();
                (r.name, shift)
            })
            .collect(),
    ))
}
