//! The one thing the zoo reads inside an ONNX file itself: which external-data files its tensors
//! point to.
//!
//! A graph stored with external data keeps each large tensor's bytes in another file and records,
//! in the tensor's `external_data` entries, a `location` relative to the model's folder. ONNX
//! Runtime opens those files on its own; the zoo instead hands it the bytes it verified (see
//! [`crate::zoo::Zoo::load`]), so it must know every location the model names, and refuse one the
//! manifest does not list.
//!
//! The walk reads the protobuf wire format directly (`onnx.proto3`: ModelProto.graph = 7,
//! GraphProto.node = 1, initializer = 5, sparse_initializer = 15, NodeProto.attribute = 5,
//! AttributeProto.t = 5, g = 6, tensors = 10, graphs = 11, sparse_tensor = 22, sparse_tensors = 23,
//! TensorProto.external_data = 13, data_location = 14, SparseTensorProto.values = 1, indices = 2,
//! ModelProto.functions = 25, FunctionProto.node = 7). It is about a hundred lines against a
//! format frozen by protobuf's compatibility rules; a generated protobuf binding (prost + the ONNX
//! schema) would add a build step and two dependencies for the same five fields. Every length is
//! checked against what remains, nesting is bounded, and nothing is allocated in proportion to a
//! number read from the file.

use std::collections::BTreeSet;

/// Deepest nesting of graphs within graphs (`If`/`Loop` bodies) the walk follows.
pub const MAX_GRAPH_DEPTH: usize = 32;

/// Why a model's bytes could not be read as an ONNX model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError(pub String);

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Walk<T> = std::result::Result<T, ProtoError>;

/// The `location` of every external-data entry in the model, sorted and without repeats.
pub fn external_locations(model: &[u8]) -> Walk<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for field in Fields::new(model) {
        let (number, value) = field?;
        match (number, value) {
            (7, Wire::Len(graph)) => walk_graph(graph, 0, &mut out)?,
            (25, Wire::Len(function)) => {
                for f in Fields::new(function) {
                    if let (7, Wire::Len(node)) = f? {
                        walk_node(node, 0, &mut out)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn walk_graph(graph: &[u8], depth: usize, out: &mut BTreeSet<String>) -> Walk<()> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(ProtoError(format!("graphs nest deeper than {MAX_GRAPH_DEPTH} levels")));
    }
    for field in Fields::new(graph) {
        match field? {
            (1, Wire::Len(node)) => walk_node(node, depth, out)?,
            (5, Wire::Len(tensor)) => walk_tensor(tensor, out)?,
            (15, Wire::Len(sparse)) => walk_sparse(sparse, out)?,
            _ => {}
        }
    }
    Ok(())
}

fn walk_node(node: &[u8], depth: usize, out: &mut BTreeSet<String>) -> Walk<()> {
    for field in Fields::new(node) {
        if let (5, Wire::Len(attribute)) = field? {
            for a in Fields::new(attribute) {
                match a? {
                    (5 | 10, Wire::Len(tensor)) => walk_tensor(tensor, out)?,
                    (6 | 11, Wire::Len(graph)) => walk_graph(graph, depth + 1, out)?,
                    (22 | 23, Wire::Len(sparse)) => walk_sparse(sparse, out)?,
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn walk_sparse(sparse: &[u8], out: &mut BTreeSet<String>) -> Walk<()> {
    for field in Fields::new(sparse) {
        if let (1 | 2, Wire::Len(tensor)) = field? {
            walk_tensor(tensor, out)?;
        }
    }
    Ok(())
}

fn walk_tensor(tensor: &[u8], out: &mut BTreeSet<String>) -> Walk<()> {
    let mut external = false;
    let mut location = None;
    for field in Fields::new(tensor) {
        match field? {
            (14, Wire::Varint(1)) => external = true,
            (13, Wire::Len(entry)) => {
                let (mut key, mut value) = (None, None);
                for e in Fields::new(entry) {
                    match e? {
                        (1, Wire::Len(k)) => key = Some(k),
                        (2, Wire::Len(v)) => value = Some(v),
                        _ => {}
                    }
                }
                if key == Some(b"location".as_slice()) {
                    let v = value.unwrap_or_default();
                    let text = std::str::from_utf8(v)
                        .map_err(|_| ProtoError("an external-data location is not UTF-8".to_string()))?;
                    location = Some(text.to_string());
                }
            }
            _ => {}
        }
    }
    match (external, location) {
        (true, Some(l)) => {
            out.insert(l);
            Ok(())
        }
        (true, None) => Err(ProtoError("a tensor stored externally names no `location`".to_string())),
        // A location without data_location = EXTERNAL is ignored by ONNX Runtime too.
        (false, _) => Ok(()),
    }
}

/// One field's value on the wire.
#[derive(Debug)]
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

/// The fields of one message, in order.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { rest: bytes, failed: false }
    }

    fn varint(&mut self) -> Walk<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or_else(|| ProtoError("truncated varint".to_string()))?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError("a varint longer than 10 bytes".to_string()))
    }

    fn take(&mut self, n: u64) -> Walk<&'a [u8]> {
        let n = usize::try_from(n).ok().filter(|&n| n <= self.rest.len()).ok_or_else(|| {
            ProtoError(format!("a field of {n} bytes runs past the end of its message ({} left)", self.rest.len()))
        })?;
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn field(&mut self) -> Walk<(u64, Wire<'a>)> {
        let key = self.varint()?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let n = self.varint()?;
                Wire::Len(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            other => return Err(ProtoError(format!("field {number} has wire type {other}, which ONNX does not use"))),
        };
        if number == 0 {
            return Err(ProtoError("a field numbered 0".to_string()));
        }
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Walk<(u64, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn len(number: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(number << 3 | 2, &mut out);
        varint(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }

    fn external_tensor(location: &str) -> Vec<u8> {
        let entry = [len(1, b"location"), len(2, location.as_bytes())].concat();
        let mut t = len(8, b"w");
        t.extend(len(13, &entry));
        t.extend([14 << 3, 1]);
        t
    }

    #[test]
    fn finds_locations_in_initializers_constants_and_subgraphs() {
        let inner = len(5, &external_tensor("inner.data"));
        let attribute = [len(1, b"then_branch"), len(6, &inner)].concat();
        let constant = [len(1, b"value"), len(5, &external_tensor("const.data"))].concat();
        let graph = [
            len(5, &external_tensor("a.data")),
            len(5, &external_tensor("a.data")),
            len(1, &len(5, &attribute)),
            len(1, &len(5, &constant)),
        ]
        .concat();
        let model = [vec![8, 8], len(7, &graph)].concat();
        let found = external_locations(&model).map_err(|e| e.0);
        assert_eq!(found, Ok(["a.data", "const.data", "inner.data"].map(String::from).into()));
    }

    #[test]
    fn a_location_without_the_external_flag_is_not_a_reference() {
        let mut t = external_tensor("x.data");
        t.truncate(t.len() - 2);
        let model = len(7, &len(5, &t));
        assert_eq!(external_locations(&model).map_err(|e| e.0), Ok(BTreeSet::new()));
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        for bad in [vec![0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f], vec![0x3a, 5, 1], vec![0x3b], vec![0x80; 12], vec![0, 0]]
        {
            assert!(external_locations(&bad).is_err(), "{bad:?}");
        }
        // Graphs nested past the limit.
        let mut g = len(5, &external_tensor("deep.data"));
        for _ in 0..=MAX_GRAPH_DEPTH + 1 {
            g = len(1, &len(5, &len(6, &g)));
        }
        assert!(external_locations(&len(7, &g)).is_err());
    }

    #[test]
    fn reads_the_shipped_fixture() -> std::io::Result<()> {
        let bytes = std::fs::read("tests/fixtures/runtime/zoo/onnx/tiny-decoder.onnx")?;
        let found = external_locations(&bytes).map_err(|e| std::io::Error::other(e.0))?;
        assert_eq!(found, BTreeSet::from(["tiny-decoder.data".to_string()]));
        Ok(())
    }
}
