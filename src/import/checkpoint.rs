//! The token-embedding matrix of a Hugging Face checkpoint folder (`model.safetensors`, or the
//! shards of `model.safetensors.index.json`), for a decoder built without its embedding
//! (onnxruntime-genai's `exclude_embeds`): the `embed` graph then looks rows up in it.
//!
//! safetensors is an 8-byte little-endian header length, a JSON header
//! (`{name: {dtype, shape, data_offsets: [begin, end]}}`, offsets from the end of the header) and
//! the raw tensors; reading one tensor is a seek, so a multi-gigabyte checkpoint is not read whole.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Longest safetensors header read (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// Names of the token embedding in the checkpoints the builders read, most specific first.
const EMBEDDING_SUFFIXES: [&str; 3] = ["embed_tokens.weight", "wte.weight", "word_embeddings.weight"];

/// One embedding matrix, as float32 little-endian bytes.
#[derive(Debug)]
pub struct Embedding {
    /// The tensor's name in the checkpoint.
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// Rows.
    pub vocab: i64,
    /// Columns.
    pub hidden: i64,
    /// The stored element type (`F32`, `F16`, `BF16`), converted to float32.
    pub dtype: String,
    /// (vocab, hidden) float32, little-endian, row-major.
    pub data: Vec<u8>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

#[derive(Debug, Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

fn header(path: &Path) -> Result<(std::fs::File, u64, BTreeMap<String, serde_json::Value>)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| Error::io("reading", path, e))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(Error::import(path, None, format!("a safetensors header of {n} bytes (at most {MAX_HEADER})")));
    }
    let mut text = vec![0u8; n as usize];
    file.read_exact(&mut text).map_err(|e| Error::io("reading", path, e))?;
    let map = serde_json::from_slice(&text)
        .map_err(|e| Error::import(path, None, format!("not a safetensors file: its header is not JSON ({e})")))?;
    Ok((file, 8 + n, map))
}

/// The token embedding of the checkpoint in `folder`: the one tensor whose name ends with
/// `embed_tokens.weight` (Llama, Mistral, Qwen, Phi-3 ...), else `wte.weight` (GPT-2), else
/// `word_embeddings.weight`, of rank 2; float32, float16 and bfloat16 are read as float32.
pub fn embedding(folder: &Path) -> Result<Embedding> {
    let index_path = folder.join("model.safetensors.index.json");
    let single = folder.join("model.safetensors");
    // name -> file holding it
    let names: BTreeMap<String, PathBuf> = if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path).map_err(|e| Error::io("reading", &index_path, e))?;
        let index: Index = serde_json::from_str(&text)
            .map_err(|e| Error::import(&index_path, Some("weight_map"), format!("cannot be read ({e})")))?;
        index.weight_map.into_iter().map(|(k, v)| (k, folder.join(v))).collect()
    } else if single.is_file() {
        let (_, _, map) = header(&single)?;
        map.into_keys().filter(|k| k != "__metadata__").map(|k| (k, single.clone())).collect()
    } else {
        return Err(Error::import(
            folder,
            None,
            "holds neither model.safetensors nor model.safetensors.index.json; `--embeddings` names the Hugging Face \
             checkpoint the decoder was built from (the builder's `-i` folder)",
        ));
    };
    let found = EMBEDDING_SUFFIXES.iter().find_map(|suffix| {
        let hits: Vec<&String> = names.keys().filter(|k| k.ends_with(suffix)).collect();
        (!hits.is_empty()).then_some(hits)
    });
    let Some(hits) = found else {
        return Err(Error::import(
            folder,
            None,
            format!("no token embedding: no tensor named `*{}`", EMBEDDING_SUFFIXES.join("`, `*")),
        ));
    };
    let [name] = hits.as_slice() else {
        let list: Vec<String> = hits.iter().map(|h| format!("`{h}`")).collect();
        return Err(Error::import(
            folder,
            None,
            format!("several token embeddings ({}); expected one", list.join(", ")),
        ));
    };
    let file = names[*name].clone();
    let (mut handle, start, map) = header(&file)?;
    let entry: Entry = map
        .get(name.as_str())
        .cloned()
        .ok_or_else(|| Error::import(&file, Some(name), "is listed by the index but not in this file"))
        .and_then(|v| {
            serde_json::from_value(v).map_err(|e| Error::import(&file, Some(name), format!("cannot be read ({e})")))
        })?;
    let [vocab, hidden] = entry.shape[..] else {
        return Err(Error::import(&file, Some(name), format!("has shape {:?}; expected (vocab, hidden)", entry.shape)));
    };
    let width = match entry.dtype.as_str() {
        "F32" => 4,
        "F16" | "BF16" => 2,
        other => {
            return Err(Error::import(&file, Some(name), format!("is `{other}`; expected F32, F16 or BF16")));
        }
    };
    let [begin, end] = entry.data_offsets;
    if end.checked_sub(begin) != Some(vocab * hidden * width) {
        return Err(Error::import(&file, Some(name), "its data offsets do not match its shape and type"));
    }
    handle.seek(SeekFrom::Start(start + begin)).map_err(|e| Error::io("reading", &file, e))?;
    let mut raw = vec![0u8; (end - begin) as usize];
    handle.read_exact(&mut raw).map_err(|e| Error::io("reading", &file, e))?;
    let data = match entry.dtype.as_str() {
        "F32" => raw,
        "F16" => {
            raw.chunks_exact(2).flat_map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes()).collect()
        }
        _ => raw
            .chunks_exact(2)
            .flat_map(|c| (u32::from(u16::from_le_bytes([c[0], c[1]])) << 16).to_le_bytes())
            .collect(),
    };
    Ok(Embedding { name: name.to_string(), file, vocab: vocab as i64, hidden: hidden as i64, dtype: entry.dtype, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_safetensors(path: &Path, tensors: &[(&str, &str, [u64; 2], Vec<u8>)]) {
        let mut header = serde_json::Map::new();
        let mut offset = 0u64;
        let mut body = Vec::new();
        for (name, dtype, shape, data) in tensors {
            let end = offset + data.len() as u64;
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}),
            );
            body.extend_from_slice(data);
            offset = end;
        }
        let text = serde_json::to_vec(&header).unwrap();
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend(text);
        out.extend(body);
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn reads_the_embedding_in_float32_from_any_stored_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let f32s: Vec<u8> = [1.0f32, -2.0, 0.5, 3.0, 0.0, 7.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bf16: Vec<u8> = [1.0f32, -2.0, 0.5, 3.0, 0.0, 7.0]
            .iter()
            .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        for (dtype, data) in [("F32", f32s.clone()), ("BF16", bf16)] {
            write_safetensors(
                &path,
                &[("lm_head.weight", "F32", [3, 2], f32s.clone()), ("model.embed_tokens.weight", dtype, [3, 2], data)],
            );
            let e = embedding(dir.path()).unwrap();
            assert_eq!((e.name.as_str(), e.vocab, e.hidden), ("model.embed_tokens.weight", 3, 2));
            assert_eq!(e.data, f32s, "{dtype}");
        }
    }

    #[test]
    fn names_the_folder_and_what_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let e = embedding(dir.path()).unwrap_err().to_string();
        assert!(e.contains("neither model.safetensors"), "{e}");
        write_safetensors(&dir.path().join("model.safetensors"), &[("lm_head.weight", "F32", [1, 1], vec![0; 4])]);
        let e = embedding(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no token embedding"), "{e}");
    }
}
