//! Cutting an ONNX graph in two after the deepest node that reads a patched tensor.
//!
//! The prefix holds every node up to and including that node (plus the BatchNorm and activation
//! nodes that directly follow it, so tract can fuse them with the convolution exactly as it would
//! in the whole model); the suffix holds the rest and is optimized once. The tensors that cross
//! the cut become the prefix's outputs and the suffix's inputs. A cut may carry several tensors
//! (a residual skip connection crossing it is one more), so any topologically sorted graph can be
//! split; what cannot be split is a patched tensor read inside a subgraph (`If`, `Loop`, `Scan`),
//! a patched tensor held in a `Constant` node, or a graph output computed before the cut.

use std::collections::HashSet;

use crate::onnx::pb;

/// Why a graph cannot be split for patching.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("graph has no nodes")]
    Empty,
    #[error("patched tensor '{0}' is not read by any node of the main graph")]
    Unused(String),
    #[error(
        "node '{node}' ({op}) holds a subgraph and comes before the last patched layer; \
         the runtime cannot split a graph inside or around control flow"
    )]
    Subgraph { node: String, op: String },
    #[error(
        "graph output '{0}' is computed before the last patched layer; \
         the runtime cannot split a model whose outputs come from the patched prefix"
    )]
    OutputInPrefix(String),
    #[error("patched tensor '{0}' is the output of a Constant node, not an initializer")]
    InConstant(String),
}

/// Where one of the suffix's inputs comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutSource {
    /// Output `i` of the prefix.
    Prefix(usize),
    /// Input `i` of the whole model (read by nodes on both sides of the cut).
    Model(usize),
}

/// A model cut in two.
#[derive(Debug, Clone)]
pub struct Split {
    /// The prefix: the model's inputs, the nodes up to the cut, their initializers; outputs are
    /// the cut tensors computed in it.
    pub prefix: pb::ModelProto,
    /// The suffix, or `None` when the last patched node feeds the model's outputs directly (the
    /// prefix is then the whole model).
    pub suffix: Option<pb::ModelProto>,
    /// Per suffix input, where its value comes from.
    pub suffix_inputs: Vec<CutSource>,
    /// Index of the last node in the prefix.
    pub last_prefix_node: usize,
    /// Names of the tensors crossing the cut, in suffix input order.
    pub cut: Vec<String>,
}

/// Operators that directly follow a convolution and that tract folds or fuses into it; keeping
/// them on the same side as the convolution keeps patched results identical to the whole model's.
const FOLLOWERS: &[&str] = &[
    "BatchNormalization",
    "Relu",
    "Clip",
    "HardSwish",
    "HardSigmoid",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Elu",
    "Selu",
    "Softplus",
];

fn has_subgraph(node: &pb::NodeProto) -> bool {
    node.attribute
        .iter()
        .any(|a| a.g.is_some() || !a.graphs.is_empty())
}

/// Splits `model` so that every tensor in `patched` is read only by prefix nodes. The model is
/// taken by value and its nodes and initializers are moved into the two halves, not copied: on a
/// 1–2 GB device a second copy of a large model's weights at load is what would not fit.
pub fn split(mut model: pb::ModelProto, patched: &HashSet<String>) -> Result<Split, SplitError> {
    let graph = model.graph.take().ok_or(SplitError::Empty)?;
    let nodes = &graph.node;
    if nodes.is_empty() {
        return Err(SplitError::Empty);
    }
    for n in nodes.iter().filter(|n| n.op_type == "Constant") {
        if let Some(o) = n.output.iter().find(|o| patched.contains(*o)) {
            return Err(SplitError::InConstant(o.clone()));
        }
    }
    let mut last = 0;
    for name in patched {
        let reader = nodes
            .iter()
            .rposition(|n| n.input.iter().any(|i| i == name))
            .ok_or_else(|| SplitError::Unused(name.clone()))?;
        last = last.max(reader);
    }
    // Pull in the BatchNorm/activation chain that follows the last patched node.
    while last + 1 < nodes.len()
        && FOLLOWERS.contains(&nodes[last + 1].op_type.as_str())
        && nodes[last + 1]
            .input
            .first()
            .is_some_and(|i| nodes[last].output.contains(i))
    {
        last += 1;
    }
    if let Some(n) = nodes[..=last].iter().find(|n| has_subgraph(n)) {
        return Err(SplitError::Subgraph {
            node: n.name.clone(),
            op: n.op_type.clone(),
        });
    }
    build(&model, graph, last)
}

/// What [`build`] decides before moving anything: the cut and where each suffix input comes
/// from.
struct Plan {
    cut: Vec<String>,
    prefix_outputs: Vec<pb::ValueInfoProto>,
    suffix_inputs: Vec<CutSource>,
    prefix_inputs: Vec<pb::ValueInfoProto>,
}

fn plan(graph: &pb::GraphProto, last: usize) -> Result<Plan, SplitError> {
    let (pre_nodes, suf_nodes) = graph.node.split_at(last + 1);
    let produced: HashSet<&str> = pre_nodes
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect();
    let model_inputs: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    if let Some(o) = graph
        .output
        .iter()
        .find(|o| produced.contains(o.name.as_str()))
    {
        return Err(SplitError::OutputInPrefix(o.name.clone()));
    }
    // Tensors read by the suffix that the prefix computes or the model takes as input, in the
    // order the suffix first reads them (deterministic).
    let mut cut: Vec<String> = Vec::new();
    for n in suf_nodes {
        for i in &n.input {
            let crossing = produced.contains(i.as_str()) || model_inputs.contains(&i.as_str());
            if crossing && !cut.contains(i) {
                cut.push(i.clone());
            }
        }
    }
    let mut prefix_outputs = Vec::new();
    let mut suffix_inputs = Vec::new();
    for name in &cut {
        if let Some(ix) = model_inputs.iter().position(|m| m == name) {
            suffix_inputs.push(CutSource::Model(ix));
        } else {
            suffix_inputs.push(CutSource::Prefix(prefix_outputs.len()));
            prefix_outputs.push(untyped(name));
        }
    }
    let prefix_inputs = graph
        .input
        .iter()
        .filter(|i| pre_nodes.iter().any(|n| n.input.contains(&i.name)))
        .cloned()
        .collect();
    Ok(Plan {
        cut,
        prefix_outputs,
        suffix_inputs,
        prefix_inputs,
    })
}

fn build(
    model: &pb::ModelProto,
    mut graph: pb::GraphProto,
    last: usize,
) -> Result<Split, SplitError> {
    if last + 1 == graph.node.len() {
        let (inputs, outputs) = (
            std::mem::take(&mut graph.input),
            std::mem::take(&mut graph.output),
        );
        let nodes = std::mem::take(&mut graph.node);
        let read = reads(&nodes);
        let inits = std::mem::take(&mut graph.initializer)
            .into_iter()
            .filter(|t| read.contains(&t.name))
            .collect();
        let prefix = subgraph_model(model, &graph.name, nodes, inits, inputs, outputs);
        return Ok(Split {
            prefix,
            suffix: None,
            suffix_inputs: Vec::new(),
            last_prefix_node: last,
            cut: Vec::new(),
        });
    }
    let p = plan(&graph, last)?;
    let suf_nodes = graph.node.split_off(last + 1);
    let pre_nodes = std::mem::take(&mut graph.node);
    // Each initializer goes to the half that reads it, moved; one read on both sides of the cut
    // (rare: a shared constant) is the only copy made.
    let (pre_reads, suf_reads) = (reads(&pre_nodes), reads(&suf_nodes));
    let (mut pre_inits, mut suf_inits) = (Vec::new(), Vec::new());
    for t in std::mem::take(&mut graph.initializer) {
        match (pre_reads.contains(&t.name), suf_reads.contains(&t.name)) {
            (true, true) => {
                suf_inits.push(t.clone());
                pre_inits.push(t);
            }
            (true, false) => pre_inits.push(t),
            (false, true) => suf_inits.push(t),
            (false, false) => {}
        }
    }
    let suf_inputs: Vec<pb::ValueInfoProto> = p.cut.iter().map(|c| untyped(c)).collect();
    let outputs = std::mem::take(&mut graph.output);
    let prefix = subgraph_model(
        model,
        &graph.name,
        pre_nodes,
        pre_inits,
        p.prefix_inputs,
        p.prefix_outputs,
    );
    let suffix = subgraph_model(
        model,
        &graph.name,
        suf_nodes,
        suf_inits,
        suf_inputs,
        outputs,
    );
    Ok(Split {
        prefix,
        suffix: Some(suffix),
        suffix_inputs: p.suffix_inputs,
        last_prefix_node: last,
        cut: p.cut,
    })
}

/// A value without type information; the runtime sets the facts of suffix inputs itself.
fn untyped(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.to_string(),
        ..Default::default()
    }
}

/// The tensor names `nodes` read.
fn reads(nodes: &[pb::NodeProto]) -> HashSet<String> {
    nodes.iter().flat_map(|n| n.input.iter().cloned()).collect()
}

/// A model of `nodes` with their initializers, inputs and outputs, and `model`'s header.
fn subgraph_model(
    model: &pb::ModelProto,
    name: &str,
    nodes: Vec<pb::NodeProto>,
    initializer: Vec<pb::TensorProto>,
    input: Vec<pb::ValueInfoProto>,
    output: Vec<pb::ValueInfoProto>,
) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: model.ir_version,
        opset_import: model.opset_import.clone(),
        producer_name: model.producer_name.clone(),
        graph: Some(pb::GraphProto {
            name: name.to_string(),
            node: nodes,
            initializer,
            input,
            output,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::build::node;
    use crate::onnx::OnnxModel;

    /// The shipped demo model (a small VGG: Conv-Relu pairs, pools, one Gemm).
    fn demo() -> pb::ModelProto {
        let bytes = include_bytes!("../../../signatures/clean.onnx");
        OnnxModel::from_bytes(bytes, "clean.onnx")
            .expect("the shipped model decodes")
            .proto()
            .clone()
    }

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cut_follows_the_relu_after_the_last_patched_conv() {
        let s = split(demo(), &set(&["features.0.weight", "features.2.weight"])).unwrap();
        // Conv0, Relu1, Conv2, Relu3 are in the prefix; the cut is the ReLU's output.
        assert_eq!(s.last_prefix_node, 3);
        assert_eq!(s.cut, ["features.3"]);
        assert_eq!(s.suffix_inputs, [CutSource::Prefix(0)]);
        let pre = s.prefix.graph.unwrap();
        assert_eq!(pre.initializer.len(), 4);
        let suf = s.suffix.unwrap().graph.unwrap();
        assert!(suf
            .initializer
            .iter()
            .all(|t| !t.name.starts_with("features.0")));
    }

    #[test]
    fn patching_the_classifier_puts_everything_in_the_prefix() {
        let s = split(demo(), &set(&["classifier.weight"])).unwrap();
        assert!(s.suffix.is_none());
        assert_eq!(s.prefix.graph.unwrap().output[0].name, "logits");
    }

    #[test]
    fn refusals_name_the_tensor() {
        let mut m = demo();
        let g = m.graph.as_mut().unwrap();
        let mut c = node("Constant", &[], "k");
        c.output = vec!["k".into()];
        g.node.insert(0, c);
        assert_eq!(
            split(m, &set(&["k"])).unwrap_err(),
            SplitError::InConstant("k".into())
        );
        assert_eq!(
            split(demo(), &set(&["nope"])).unwrap_err(),
            SplitError::Unused("nope".into())
        );
        let mut m = demo();
        let g = m.graph.as_mut().unwrap();
        g.node[1].attribute.push(pb::AttributeProto {
            name: "then_branch".into(),
            g: Some(pb::GraphProto::default()),
            ..Default::default()
        });
        assert!(matches!(
            split(m, &set(&["features.2.weight"])).unwrap_err(),
            SplitError::Subgraph { .. }
        ));
    }
}
