//! What the zoo reads inside an ONNX file itself: which external-data files its tensors point to
//! and, for the importers (`crate::import`), the graph's declared inputs and outputs; plus the
//! few wire-format pieces the importers need to rewrite a model (each field's raw bytes, and a
//! writer for the fields they add).
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
    walk_model(model, &mut |tensor| {
        if let Some(l) = external_location(tensor)? {
            out.insert(l);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The bytes every tensor of the model (initializers, constants, in subgraphs and functions too)
/// holds in memory: the product of its dims times its element size, wherever it is stored (inline,
/// as raw or typed data, or in an external file). At batch 1 a decoder step reads each weight once,
/// so this is what the memory-bandwidth floor divides (`crate::bench::floor`). A tensor of strings
/// or of an unknown element type counts no bytes.
pub fn tensor_bytes(model: &[u8]) -> Walk<u64> {
    let mut bits = 0u128;
    walk_model(model, &mut |tensor| {
        let (mut elements, mut elem_type) = (1u128, 0i64);
        for field in Fields::new(tensor) {
            match field? {
                (1, Wire::Varint(d)) => elements = elements.saturating_mul(u128::from(d)),
                (1, Wire::Len(packed)) => {
                    let mut dims = Fields::new(packed);
                    while !dims.rest.is_empty() {
                        elements = elements.saturating_mul(u128::from(dims.varint()?));
                    }
                }
                (2, Wire::Varint(t)) => elem_type = t as i64,
                _ => {}
            }
        }
        bits = bits.saturating_add(elements.saturating_mul(u128::from(elem_bits(elem_type))));
        Ok(())
    })?;
    Ok(u64::try_from(bits.div_ceil(8)).unwrap_or(u64::MAX))
}

/// Bits per element of a `TensorProto.DataType` (0 for strings and unknown types).
fn elem_bits(elem_type: i64) -> u64 {
    match elem_type {
        1 | 6 | 12 => 32,         // float, int32, uint32
        2 | 3 | 9 | 17..=20 => 8, // uint8, int8, bool, the float8 types
        4 | 5 | 10 | 16 => 16,    // uint16, int16, float16, bfloat16
        7 | 11 | 13 | 14 => 64,   // int64, double, uint64, complex64
        15 => 128,                // complex128
        21..=23 => 4,             // uint4, int4, float4e2m1
        _ => 0,
    }
}

/// Calls `tensor` with every TensorProto of the model: graph initializers (dense and sparse),
/// node attribute tensors, in every subgraph and function.
fn walk_model(model: &[u8], tensor: &mut dyn FnMut(&[u8]) -> Walk<()>) -> Walk<()> {
    for field in Fields::new(model) {
        let (number, value) = field?;
        match (number, value) {
            (7, Wire::Len(graph)) => walk_graph(graph, 0, tensor)?,
            (25, Wire::Len(function)) => {
                for f in Fields::new(function) {
                    if let (7, Wire::Len(node)) = f? {
                        walk_node(node, 0, tensor)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn walk_graph(graph: &[u8], depth: usize, tensor: &mut dyn FnMut(&[u8]) -> Walk<()>) -> Walk<()> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(ProtoError(format!("graphs nest deeper than {MAX_GRAPH_DEPTH} levels")));
    }
    for field in Fields::new(graph) {
        match field? {
            (1, Wire::Len(node)) => walk_node(node, depth, tensor)?,
            (5, Wire::Len(t)) => tensor(t)?,
            (15, Wire::Len(sparse)) => walk_sparse(sparse, tensor)?,
            _ => {}
        }
    }
    Ok(())
}

fn walk_node(node: &[u8], depth: usize, tensor: &mut dyn FnMut(&[u8]) -> Walk<()>) -> Walk<()> {
    for field in Fields::new(node) {
        if let (5, Wire::Len(attribute)) = field? {
            for a in Fields::new(attribute) {
                match a? {
                    (5 | 10, Wire::Len(t)) => tensor(t)?,
                    (6 | 11, Wire::Len(graph)) => walk_graph(graph, depth + 1, tensor)?,
                    (22 | 23, Wire::Len(sparse)) => walk_sparse(sparse, tensor)?,
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn walk_sparse(sparse: &[u8], tensor: &mut dyn FnMut(&[u8]) -> Walk<()>) -> Walk<()> {
    for field in Fields::new(sparse) {
        if let (1 | 2, Wire::Len(t)) = field? {
            tensor(t)?;
        }
    }
    Ok(())
}

/// The external-data `location` of a tensor stored externally (`None` for one stored inline).
fn external_location(tensor: &[u8]) -> Walk<Option<String>> {
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
        (true, Some(l)) => Ok(Some(l)),
        (true, None) => Err(ProtoError("a tensor stored externally names no `location`".to_string())),
        // A location without data_location = EXTERNAL is ignored by ONNX Runtime too.
        (false, _) => Ok(None),
    }
}

/// One field's value on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wire<'a> {
    /// A varint (wire type 0).
    Varint(u64),
    /// A length-delimited value (wire type 2): bytes, a string, a message or a packed list.
    Len(&'a [u8]),
    /// A fixed 32- or 64-bit value (wire types 5 and 1), not read.
    Fixed,
}

/// The fields of one message, in order.
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// One field with the raw bytes it occupies (key and value), to copy it unchanged.
pub(crate) struct RawField<'a> {
    /// The field number.
    pub number: u64,
    /// Its value.
    pub wire: Wire<'a>,
    /// Key and value as they are on the wire.
    pub raw: &'a [u8],
}

/// The fields of one message with their raw bytes, in order.
pub(crate) fn raw_fields(bytes: &[u8]) -> impl Iterator<Item = Walk<RawField<'_>>> {
    let mut fields = Fields::new(bytes);
    std::iter::from_fn(move || {
        if fields.rest.is_empty() || fields.failed {
            return None;
        }
        let before = fields.rest;
        let field = fields.field();
        fields.failed = field.is_err();
        Some(field.map(|(number, wire)| RawField { number, wire, raw: &before[..before.len() - fields.rest.len()] }))
    })
}

impl<'a> Fields<'a> {
    /// The fields of the message `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
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

/// A `TensorProto.DataType` value the importers name in messages.
pub fn elem_type_name(elem_type: i64) -> &'static str {
    match elem_type {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        6 => "int32",
        7 => "int64",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        16 => "bfloat16",
        _ => "another type",
    }
}

/// `TensorProto.DataType` FLOAT.
pub const FLOAT: i64 = 1;
/// `TensorProto.DataType` INT64.
pub const INT64: i64 = 7;

/// One dimension of a declared graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoDim {
    /// A fixed size (`dim_value`).
    Value(i64),
    /// A named dynamic axis (`dim_param`).
    Param(String),
    /// Neither (an unnamed dynamic axis).
    Unknown,
}

/// A graph input or output as the model declares it (`ValueInfoProto` of a tensor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    /// Name.
    pub name: String,
    /// `TensorProto.DataType` (1 float32, 7 int64, 10 float16, ...); 0 when not a tensor.
    pub elem_type: i64,
    /// Dimensions; empty when the model declares no shape.
    pub dims: Vec<ProtoDim>,
}

/// The main graph's declared inputs (without initializers listed as inputs, as old exporters
/// wrote them) and outputs, in order.
pub fn graph_io(model: &[u8]) -> Walk<(Vec<ValueInfo>, Vec<ValueInfo>)> {
    let mut graph = None;
    for field in Fields::new(model) {
        if let (7, Wire::Len(g)) = field? {
            graph = Some(g);
        }
    }
    let graph = graph.ok_or_else(|| ProtoError("the model has no graph".to_string()))?;
    let (mut inputs, mut outputs, mut initializers) = (Vec::new(), Vec::new(), BTreeSet::new());
    for field in Fields::new(graph) {
        match field? {
            (11, Wire::Len(v)) => inputs.push(value_info(v)?),
            (12, Wire::Len(v)) => outputs.push(value_info(v)?),
            (5, Wire::Len(t)) => {
                if let Some(name) = tensor_name(t)? {
                    initializers.insert(name);
                }
            }
            _ => {}
        }
    }
    inputs.retain(|i: &ValueInfo| !initializers.contains(&i.name));
    Ok((inputs, outputs))
}

/// A `TensorProto`'s name.
pub(crate) fn tensor_name(tensor: &[u8]) -> Walk<Option<String>> {
    for field in Fields::new(tensor) {
        if let (8, Wire::Len(n)) = field? {
            return Ok(Some(utf8(n)?));
        }
    }
    Ok(None)
}

pub(crate) fn utf8(bytes: &[u8]) -> Walk<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtoError("a name is not UTF-8".to_string()))
}

/// Reads a `ValueInfoProto` (name = 1, type = 2; TypeProto.tensor_type = 1; Tensor.elem_type = 1,
/// shape = 2; TensorShapeProto.dim = 1; Dimension.dim_value = 1, dim_param = 2).
pub(crate) fn value_info(bytes: &[u8]) -> Walk<ValueInfo> {
    let mut info = ValueInfo { name: String::new(), elem_type: 0, dims: Vec::new() };
    for field in Fields::new(bytes) {
        match field? {
            (1, Wire::Len(n)) => info.name = utf8(n)?,
            (2, Wire::Len(ty)) => {
                for t in Fields::new(ty) {
                    if let (1, Wire::Len(tensor)) = t? {
                        for f in Fields::new(tensor) {
                            match f? {
                                (1, Wire::Varint(e)) => info.elem_type = e as i64,
                                (2, Wire::Len(shape)) => {
                                    for d in Fields::new(shape) {
                                        if let (1, Wire::Len(dim)) = d? {
                                            info.dims.push(dimension(dim)?);
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

fn dimension(bytes: &[u8]) -> Walk<ProtoDim> {
    let mut dim = ProtoDim::Unknown;
    for field in Fields::new(bytes) {
        match field? {
            (1, Wire::Varint(v)) => dim = ProtoDim::Value(v as i64),
            (2, Wire::Len(p)) => dim = ProtoDim::Param(utf8(p)?),
            _ => {}
        }
    }
    Ok(dim)
}

/// Writing protobuf fields: what the importers add to a model they rewrite.
pub(crate) mod write {
    /// Appends a varint.
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Appends a length-delimited field.
    pub fn bytes(out: &mut Vec<u8>, number: u64, body: &[u8]) {
        varint(out, number << 3 | 2);
        varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }

    /// Appends a varint field.
    pub fn uint(out: &mut Vec<u8>, number: u64, v: u64) {
        varint(out, number << 3);
        varint(out, v);
    }

    /// A `TensorProto`'s dims, data type and name: the fields every tensor it writes starts with.
    fn tensor_head(name: &str, elem_type: i64, dims: &[i64]) -> Vec<u8> {
        let mut t = Vec::new();
        for d in dims {
            uint(&mut t, 1, *d as u64);
        }
        uint(&mut t, 2, elem_type as u64);
        bytes(&mut t, 8, name.as_bytes());
        t
    }

    /// A `TensorProto` of `dims` (empty: a scalar) holding `raw`, its little-endian elements.
    pub fn tensor(name: &str, elem_type: i64, dims: &[i64], raw: &[u8]) -> Vec<u8> {
        let mut t = tensor_head(name, elem_type, dims);
        bytes(&mut t, 9, raw);
        t
    }

    /// A `TensorProto` of `dims` whose `length` bytes are in the external-data file `location`
    /// (next to the model) from offset 0.
    pub fn external_tensor(name: &str, elem_type: i64, dims: &[i64], location: &str, length: u64) -> Vec<u8> {
        let mut t = tensor_head(name, elem_type, dims);
        let length = length.to_string();
        for (k, v) in [("location", location), ("offset", "0"), ("length", length.as_str())] {
            let mut entry = Vec::new();
            bytes(&mut entry, 1, k.as_bytes());
            bytes(&mut entry, 2, v.as_bytes());
            bytes(&mut t, 13, &entry);
        }
        uint(&mut t, 14, 1); // data_location: EXTERNAL
        t
    }

    /// A `ValueInfoProto` of a tensor: name, element type and dimensions (a fixed size, or a
    /// name for a dynamic axis).
    pub fn value_info(name: &str, elem_type: i64, dims: &[super::ProtoDim]) -> Vec<u8> {
        let mut shape = Vec::new();
        for d in dims {
            let mut dim = Vec::new();
            match d {
                super::ProtoDim::Value(v) => uint(&mut dim, 1, *v as u64),
                super::ProtoDim::Param(p) => bytes(&mut dim, 2, p.as_bytes()),
                super::ProtoDim::Unknown => {}
            }
            bytes(&mut shape, 1, &dim);
        }
        let mut tensor = Vec::new();
        uint(&mut tensor, 1, elem_type as u64);
        bytes(&mut tensor, 2, &shape);
        let mut ty = Vec::new();
        bytes(&mut ty, 1, &tensor);
        let mut out = Vec::new();
        bytes(&mut out, 1, name.as_bytes());
        bytes(&mut out, 2, &ty);
        out
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
        // what `onnx` counts (prod(dims) x element size over initializers and constants): its
        // external weights (38 656 bytes in tiny-decoder.data) and the small tensors kept inline
        assert_eq!(tensor_bytes(&bytes), Ok(39_604));
        Ok(())
    }

    fn tensor(dims: &[u64], elem_type: u64, packed: bool) -> Vec<u8> {
        let mut t = Vec::new();
        if packed {
            let mut body = Vec::new();
            dims.iter().for_each(|d| varint(*d, &mut body));
            t.extend(len(1, &body));
        } else {
            for d in dims {
                varint(1 << 3, &mut t);
                varint(*d, &mut t);
            }
        }
        varint(2 << 3, &mut t);
        varint(elem_type, &mut t);
        t
    }

    #[test]
    fn tensor_bytes_are_elements_times_their_size_wherever_they_are_stored() {
        let float = tensor(&[4, 8], 1, true); // 128 bytes
        let int4 = tensor(&[3, 5], 22, false); // 15 nibbles: 7.5 bytes
        let strings = tensor(&[9], 8, true); // no size
        let scalar = tensor(&[], 7, true); // one int64
        let mut external = external_tensor("w.data");
        external.extend(tensor(&[10], 10, false)); // 10 float16, stored elsewhere: 20 bytes
        let inner = len(5, &int4);
        let attribute = [len(1, b"then_branch"), len(6, &inner)].concat();
        let graph = [len(5, &float), len(5, &strings), len(5, &scalar), len(5, &external), len(1, &len(5, &attribute))]
            .concat();
        assert_eq!(tensor_bytes(&len(7, &graph)), Ok(128 + 8 + 20 + 8)); // 7.5 rounds up with the rest
        assert!(tensor_bytes(&[0x3a, 5, 1]).is_err());
    }
}
