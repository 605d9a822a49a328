//! Hugging Face model folders: `config.json` plus `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`. Weights load into a `VarMap` (so they can be trained) in
//! the dtype asked for; saving writes a folder that this loader and transformers read back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use super::tokenizer::TOKENIZER_FILES;
use super::{Decoder, DecoderConfig, LmError, Result};

fn io_error(path: &Path, e: impl std::fmt::Display) -> LmError {
    LmError::Invalid(format!("{}: {e}", path.display()))
}

/// The weight files of a model folder, in a fixed order.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| io_error(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| io_error(&index, format!("malformed JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| io_error(&index, "no `weight_map` object"))?;
        let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = paths.iter().find(|p| !p.exists()) {
            return Err(io_error(
                &index,
                format!("lists {}, which does not exist", missing.display()),
            ));
        }
        return Ok(paths);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let present: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    Err(io_error(
        dir,
        format!(
            "no model.safetensors or model.safetensors.index.json (files: {})",
            present.join(", ")
        ),
    ))
}

/// Reads `config.json` of a model folder.
pub fn read_config(dir: &Path) -> Result<DecoderConfig> {
    model_folder(dir)?;
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    DecoderConfig::parse(&text, &path.display().to_string())
}

/// Checks that `dir` is a folder, so that a mistyped path is named as such and not as a
/// missing file inside it.
pub fn model_folder(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(LmError::NoModelFolder(dir.to_path_buf()))
    }
}

/// Loads a model folder as trainable weights in `dtype` (bf16/f16 files are converted).
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<(Decoder, VarMap)> {
    let config = read_config(dir)?;
    let files = weight_files(dir)?;
    // Safety: the files are memory-mapped read-only and copied into owned tensors below.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files)? };
    let map = VarMap::new();
    {
        let mut vars = map.data().lock().expect("var map lock");
        for (name, _) in st.tensors() {
            let tensor = st.load(&name, device)?.to_dtype(dtype)?;
            vars.insert(name, Var::from_tensor(&tensor)?);
        }
    }
    let before: BTreeSet<String> = map
        .data()
        .lock()
        .expect("var map lock")
        .keys()
        .cloned()
        .collect();
    let model = Decoder::new(&config, VarBuilder::from_varmap(&map, dtype, device))?;
    // A VarMap creates what it is asked for and lacks: any such name was missing on disk.
    let after: BTreeSet<String> = map
        .data()
        .lock()
        .expect("var map lock")
        .keys()
        .cloned()
        .collect();
    if let Some(missing) = after.difference(&before).next() {
        return Err(io_error(
            dir,
            format!("tensor `{missing}` is missing from the weight files"),
        ));
    }
    Ok((model, map))
}

/// The named tensors of a var map (what [`save`] writes).
pub fn tensors_of(map: &VarMap) -> BTreeMap<String, Tensor> {
    map.data()
        .lock()
        .expect("var map lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect()
}

/// The trainable variables of a var map, sorted by name (the order optimizers and
/// checkpoints rely on).
pub fn vars_of(map: &VarMap) -> Vec<(String, Var)> {
    let vars = map.data().lock().expect("var map lock");
    let mut list: Vec<(String, Var)> = vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list
}

/// The dtype a config's `torch_dtype` names (f32 for anything else).
pub fn dtype_of(config: &DecoderConfig) -> DType {
    match config.torch_dtype.as_str() {
        "bfloat16" => DType::BF16,
        "float16" => DType::F16,
        _ => DType::F32,
    }
}

/// Writes `config` and `weights` as a Hugging Face folder at `dir` (safetensors with
/// `format: pt` metadata, in `dtype`), with the tokenizer files of the model folder
/// `tokenizer_from` copied in, through a temporary sibling renamed into place, so a reader
/// never sees half a model. An existing `dir` is replaced.
pub fn save(
    dir: &Path,
    config: &DecoderConfig,
    weights: &BTreeMap<String, Tensor>,
    dtype: DType,
    tokenizer_from: Option<&Path>,
) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    let name = dir
        .file_name()
        .ok_or_else(|| io_error(dir, "not a folder path"))?
        .to_string_lossy();
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| io_error(&staging, e))?;
    let mut config = config.clone();
    config.torch_dtype = match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
    .into();
    let json = serde_json::to_string_pretty(&config).map_err(|e| io_error(dir, e))?;
    std::fs::write(staging.join("config.json"), json).map_err(|e| io_error(&staging, e))?;
    let tensors: BTreeMap<String, Tensor> = weights
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(dtype)?)))
        .collect::<Result<_>>()?;
    write_safetensors(&staging.join("model.safetensors"), &tensors)?;
    if let Some(source) = tokenizer_from {
        for file in TOKENIZER_FILES {
            let from = source.join(file);
            if from.exists() {
                std::fs::copy(&from, staging.join(file)).map_err(|e| io_error(&from, e))?;
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| io_error(dir, e))?;
    Ok(())
}

/// One safetensors file with transformers' `{"format": "pt"}` metadata.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let mut bytes: Vec<(String, Vec<u8>, safetensors::Dtype, Vec<usize>)> = Vec::new();
    for (name, t) in tensors {
        let t = t.contiguous()?;
        let (dtype, data) = match t.dtype() {
            DType::F32 => (
                safetensors::Dtype::F32,
                le_bytes(&t.flatten_all()?.to_vec1::<f32>()?),
            ),
            DType::F64 => (
                safetensors::Dtype::F64,
                le_bytes(&t.flatten_all()?.to_vec1::<f64>()?),
            ),
            DType::BF16 => (
                safetensors::Dtype::BF16,
                le_bytes(&t.flatten_all()?.to_vec1::<half::bf16>()?),
            ),
            DType::F16 => (
                safetensors::Dtype::F16,
                le_bytes(&t.flatten_all()?.to_vec1::<half::f16>()?),
            ),
            other => {
                return Err(LmError::Invalid(format!(
                    "{name}: cannot save tensors of type {other:?}"
                )))
            }
        };
        bytes.push((name.clone(), data, dtype, t.dims().to_vec()));
    }
    let views = bytes
        .iter()
        .map(|(name, data, dtype, shape)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| io_error(path, e))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::tensor::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| io_error(path, e))
}

fn le_bytes<T: bytemuck_free::ToLe>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * T::SIZE);
    for v in values {
        v.extend_le(&mut out);
    }
    out
}

/// Little-endian bytes of the float types safetensors stores.
mod bytemuck_free {
    pub trait ToLe {
        const SIZE: usize;
        fn extend_le(&self, out: &mut Vec<u8>);
    }
    impl ToLe for f32 {
        const SIZE: usize = 4;
        fn extend_le(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
    }
    impl ToLe for f64 {
        const SIZE: usize = 8;
        fn extend_le(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
    }
    impl ToLe for half::bf16 {
        const SIZE: usize = 2;
        fn extend_le(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
    }
    impl ToLe for half::f16 {
        const SIZE: usize = 2;
        fn extend_le(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro() -> DecoderConfig {
        DecoderConfig::parse(
            r#"{"model_type":"qwen2","vocab_size":13,"hidden_size":8,"intermediate_size":12,
            "num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"tie_word_embeddings":true}"#,
            "micro",
        )
        .unwrap()
    }

    fn logits(model: &Decoder) -> Vec<f32> {
        let ids = Tensor::new(&[[1u32, 5, 7, 2]], &Device::Cpu).unwrap();
        model
            .forward(&ids, None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn save_then_load_gives_identical_logits() {
        let tmp = tempfile::tempdir().unwrap();
        let map = VarMap::new();
        let model = Decoder::new(
            &micro(),
            VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let dir = tmp.path().join("tiny");
        save(&dir, &micro(), &tensors_of(&map), DType::F32, None).unwrap();
        let (back, _) = load(&dir, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(logits(&model), logits(&back));
        // transformers reads only files that carry the pt format metadata.
        let raw = std::fs::read(dir.join("model.safetensors")).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&raw).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
        // bf16 on disk loads back into f32, close to the original.
        let bf = tmp.path().join("tiny-bf16");
        save(&bf, &micro(), &tensors_of(&map), DType::BF16, None).unwrap();
        let (half, _) = load(&bf, DType::F32, &Device::Cpu).unwrap();
        let (a, b) = (logits(&model), logits(&half));
        // bf16 keeps 8 bits of mantissa: logits move by a few percent of their spread.
        let spread = a.iter().fold(1.0f32, |m, x| m.max(x.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst < 0.05 * spread,
            "bf16 moved a logit by {worst} (spread {spread})"
        );
    }

    #[test]
    fn shards_and_missing_tensors() {
        let tmp = tempfile::tempdir().unwrap();
        let map = VarMap::new();
        let model = Decoder::new(
            &micro(),
            VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let dir = tmp.path().join("sharded");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string(&micro()).unwrap(),
        )
        .unwrap();
        let all: BTreeMap<String, Tensor> = map
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let (first, second): (BTreeMap<_, _>, BTreeMap<_, _>) =
            all.into_iter().partition(|(k, _)| k.contains("layers.0"));
        let mut weight_map = serde_json::Map::new();
        for (file, part) in [
            ("model-00001-of-00002.safetensors", &first),
            ("model-00002-of-00002.safetensors", &second),
        ] {
            write_safetensors(&dir.join(file), part).unwrap();
            for k in part.keys() {
                weight_map.insert(k.clone(), file.into());
            }
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        let (back, _) = load(&dir, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(logits(&model), logits(&back));
        // Drop a shard's tensor: the loader names it instead of inventing random weights.
        let mut fewer = second.clone();
        fewer.remove("model.norm.weight");
        write_safetensors(&dir.join("model-00002-of-00002.safetensors"), &fewer).unwrap();
        let e = load(&dir, DType::F32, &Device::Cpu).err().unwrap();
        assert!(
            e.to_string()
                .contains("tensor `model.norm.weight` is missing"),
            "{e}"
        );
        let e = load(tmp.path(), DType::F32, &Device::Cpu).err().unwrap();
        assert!(e.to_string().contains("config.json"), "{e}");
    }
}
