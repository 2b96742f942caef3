//! The checkpoint format the element loads and `train` writes: safetensors with metadata.
//!
//! Metadata keys:
//! - `format`: [`FORMAT`], so other safetensors files are refused with a clear message;
//! - `network`: JSON of [`SrConfig`] (architecture and hyper-parameters, scale);
//! - `io`: JSON of [`IoSpec`] (colour space and value range of input and output);
//! - `provenance`: JSON object (config, data, iterations, commit, ...), free-form.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::arch::{sr_network, SrConfig};
use super::layout::{set_layout, Layout};

/// Version tag of the SR checkpoint layout.
pub const FORMAT: &str = "cyclesr-sr/1";

/// How pixels enter and leave the network. Only one convention exists today; it is recorded
/// so that a future one is refused by old builds instead of silently misread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoSpec {
    /// Channel order and colour space of input and output.
    pub color: String,
    /// Value range of input and output (before the element clamps and quantises).
    pub range: [f32; 2],
}

impl Default for IoSpec {
    fn default() -> Self {
        IoSpec {
            color: "rgb".into(),
            range: [0.0, 1.0],
        }
    }
}

/// G_l2h with its weights, ready to run.
pub struct SrModel {
    pub vs: nn::VarStore,
    pub net: nn::FuncT<'static>,
    pub config: SrConfig,
    pub provenance: BTreeMap<String, String>,
}

impl std::fmt::Debug for SrModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrModel")
            .field("config", &self.config)
            .field("device", &self.vs.device())
            .finish()
    }
}

impl SrModel {
    /// A freshly initialised network (PyTorch's default initialisation), its convolution
    /// weights laid out channels-last (the faster layout; see [`layout`](super::layout)).
    pub fn new(config: SrConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let net = sr_network(&vs.root(), &config);
        set_layout(&vs, Layout::ChannelsLast);
        Ok(SrModel {
            vs,
            net,
            config,
            provenance: BTreeMap::new(),
        })
    }

    /// Loads a checkpoint; every error names the file and what is wrong with it.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let context = || format!("model file {}", path.display());
        let bytes = std::fs::read(path)
            .context("cannot read the file")
            .with_context(context)?;
        Self::from_bytes(&bytes, device).with_context(context)
    }

    /// Loads a checkpoint held in memory (the embedded default model).
    pub fn from_bytes(bytes: &[u8], device: Device) -> Result<Self> {
        let (tensors, metadata) = parse_safetensors(bytes)?;
        Self::from_tensors(tensors, &metadata, device)
    }

    fn from_tensors(
        mut tensors: HashMap<String, Tensor>,
        metadata: &HashMap<String, String>,
        device: Device,
    ) -> Result<Self> {
        match metadata.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => bail!("unsupported checkpoint format '{f}' (this build reads '{FORMAT}')"),
            None => bail!("no 'format' metadata: not a cyclesr SR checkpoint"),
        }
        let network = metadata
            .get("network")
            .ok_or_else(|| anyhow!("no 'network' metadata"))?;
        let config: SrConfig = serde_json::from_str(network)
            .with_context(|| format!("invalid 'network' metadata {network}"))?;
        config.validate()?;
        if let Some(io) = metadata.get("io") {
            let io: IoSpec =
                serde_json::from_str(io).with_context(|| format!("invalid 'io' metadata {io}"))?;
            if io != IoSpec::default() {
                bail!("unsupported input/output convention {io:?}");
            }
        }
        let provenance = match metadata.get("provenance") {
            Some(p) => serde_json::from_str(p)
                .with_context(|| format!("invalid 'provenance' metadata {p}"))?,
            None => BTreeMap::new(),
        };
        // PyTorch's BatchNorm keeps a step counter that inference does not use.
        tensors.retain(|name, _| !name.ends_with("num_batches_tracked"));

        let mut model = SrModel::new(config, device)?;
        model.provenance = provenance;
        copy_into_varstore(&mut model.vs, tensors)?;
        Ok(model)
    }

    /// Writes the network and its metadata atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut metadata = HashMap::new();
        metadata.insert("format".to_string(), FORMAT.to_string());
        metadata.insert("network".to_string(), serde_json::to_string(&self.config)?);
        metadata.insert("io".to_string(), serde_json::to_string(&IoSpec::default())?);
        metadata.insert(
            "provenance".to_string(),
            serde_json::to_string(&self.provenance)?,
        );
        write_safetensors(path, &varstore_tensors(&self.vs), &metadata)
    }

    /// Forward pass in eval mode without autograd, input RGB in [0, 1] on the model's device.
    pub fn upscale(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| nn::ModuleT::forward_t(&self.net, x, false))
    }
}

/// All variables of a VarStore (trainable or not, e.g. BatchNorm statistics), by name.
pub fn varstore_tensors(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<_> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// Copies named tensors into a VarStore: every variable must be present with its exact shape,
/// and no tensor may be left over.
pub fn copy_into_varstore(
    vs: &mut nn::VarStore,
    mut tensors: HashMap<String, Tensor>,
) -> Result<()> {
    let mut variables = vs.variables();
    let mut names: Vec<_> = variables.keys().cloned().collect();
    names.sort();
    tch::no_grad(|| -> Result<()> {
        for name in names {
            let var = variables.get_mut(&name).expect("name comes from the map");
            let src = tensors
                .remove(&name)
                .ok_or_else(|| anyhow!("tensor '{name}' is missing"))?;
            if src.size() != var.size() {
                bail!(
                    "tensor '{name}' has shape {:?}, the network needs {:?}",
                    src.size(),
                    var.size()
                );
            }
            var.f_copy_(&src.to_kind(var.kind()))?;
        }
        Ok(())
    })?;
    if !tensors.is_empty() {
        let mut extra: Vec<_> = tensors.into_keys().collect();
        extra.sort();
        bail!("unexpected tensors for this network: {}", extra.join(", "));
    }
    Ok(())
}

fn kind_to_dtype(kind: Kind) -> Result<Dtype> {
    Ok(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Uint8 => Dtype::U8,
        Kind::Int8 => Dtype::I8,
        Kind::Bool => Dtype::BOOL,
        other => bail!("tensor kind {other:?} cannot be stored"),
    })
}

fn dtype_to_kind(dtype: Dtype) -> Result<Kind> {
    Ok(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::BOOL => Kind::Bool,
        other => bail!("tensor dtype {other:?} is not supported"),
    })
}

/// Reads every tensor (onto the CPU) and the metadata of a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).context("cannot read the file")?;
    parse_safetensors(&bytes)
}

/// Every tensor (onto the CPU) and the metadata of safetensors bytes.
pub fn parse_safetensors(
    bytes: &[u8],
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("not a valid safetensors file: {e}"))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("not a valid safetensors file: {e}"))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let kind = dtype_to_kind(view.dtype()).with_context(|| format!("tensor '{name}'"))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .with_context(|| format!("tensor '{name}'"))?;
        tensors.insert(name, t);
    }
    Ok((tensors, metadata))
}

/// Writes tensors (from any device) and metadata to a safetensors file atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let dtype = kind_to_dtype(t.kind()).with_context(|| format!("tensor '{name}'"))?;
        let mut data = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut data, t.numel())?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), dtype, shape, data));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| anyhow!("tensor '{name}': {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata.clone()))
        .map_err(|e| anyhow!("serialising {}: {e}", path.display()))?;
    write_atomically(path, &bytes)
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, then renames it over `path`,
/// so a crash leaves either the old file or the new one, never a torn one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Reads only the network description of a checkpoint (its header), without the weights.
pub fn read_config(path: &Path) -> Result<SrConfig> {
    use std::io::Read;
    let context = || format!("model file {}", path.display());
    let mut file = File::open(path).with_context(context)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| anyhow!("not a valid safetensors file: too short"))
        .with_context(context)?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return Err(anyhow!(
            "not a valid safetensors file: header of {len} bytes"
        ))
        .with_context(context);
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|_| anyhow!("not a valid safetensors file: truncated header"))
        .with_context(context)?;
    config_from_header(&header).with_context(context)
}

/// The network description of a checkpoint held in memory, from its header alone: no
/// tensor is read and no network is built.
pub fn config_from_bytes(bytes: &[u8]) -> Result<SrConfig> {
    let header = bytes
        .first_chunk::<8>()
        .map(|len| u64::from_le_bytes(*len) as usize)
        .and_then(|len| bytes.get(8..8usize.checked_add(len)?))
        .ok_or_else(|| anyhow!("not a valid safetensors file: truncated header"))?;
    config_from_header(header)
}

/// The `network` metadata of a safetensors header (its JSON).
fn config_from_header(header: &[u8]) -> Result<SrConfig> {
    let header: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| anyhow!("not a valid safetensors file: {e}"))?;
    let network = header
        .get("__metadata__")
        .and_then(|m| m.get("network"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| anyhow!("no 'network' metadata: not a cyclesr SR checkpoint"))?;
    let config: SrConfig = serde_json::from_str(network)
        .with_context(|| format!("invalid 'network' metadata {network}"))?;
    config.validate()?;
    Ok(config)
}
