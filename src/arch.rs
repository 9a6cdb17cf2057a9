//! Model architectures rws trains and exports: VGG-style stacks of 3×3 convolutions, ReLU and 2×2
//! max-pooling, then one linear classifier, written to ONNX with `tract_onnx::pb`.
//!
//! Tensor names follow PyTorch's `nn.Sequential` numbering (`features.0.weight`, `features.2.weight`,
//! `features.5.weight`, …, `classifier.weight`), so a signature made here names the same tensors as
//! one made from a torchvision-style VGG export, and VGG-16's first five convolutions are
//! `features.0/2/5/7/10` as in DESIGN.md. The ONNX writer needs no training backend: it takes the
//! weights as named f32 vectors, so tests and tools build real models without candle.

use std::collections::BTreeMap;

use prost::Message;
use tract_onnx::pb;

/// One stage of the feature extractor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// 3×3 convolution, padding 1, to this many channels, followed by ReLU.
    Conv(usize),
    /// 2×2 max-pooling, stride 2.
    Pool,
}

/// A VGG-style network for `side × side × 3` inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arch {
    pub name: String,
    pub side: usize,
    pub classes: usize,
    pub stages: Vec<Stage>,
}

/// A named f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Weights by tensor name.
pub type Weights = BTreeMap<String, Param>;

impl Arch {
    /// The demo network: five convolutions (8-8-16-16-32 channels) and three pools on 32×32,
    /// 14,066 parameters; trains in seconds per epoch on two cores.
    pub fn demo() -> Self {
        use Stage::*;
        Arch {
            name: "vgg-demo".into(),
            side: 32,
            classes: 10,
            stages: vec![
                Conv(8),
                Conv(8),
                Pool,
                Conv(16),
                Conv(16),
                Pool,
                Conv(32),
                Pool,
            ],
        }
    }

    /// VGG-16 for 32×32 inputs (CIFAR layout), 14.7 M parameters; for a CUDA host.
    pub fn vgg16() -> Self {
        use Stage::*;
        let cfg = [
            64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
        ];
        Arch {
            name: "vgg16".into(),
            side: 32,
            classes: 10,
            stages: cfg
                .iter()
                .map(|&c| if c == 0 { Pool } else { Conv(c) })
                .collect(),
        }
    }

    /// By name: `demo` or `vgg16`.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "demo" | "vgg-demo" => Some(Self::demo()),
            "vgg16" => Some(Self::vgg16()),
            _ => None,
        }
    }

    /// (Sequential index, input channels, output channels) of each convolution. Each conv is
    /// followed by a ReLU, which takes the next index; a pool takes one index.
    pub fn convs(&self) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let (mut idx, mut ch) = (0, 3);
        for s in &self.stages {
            match *s {
                Stage::Conv(c) => {
                    out.push((idx, ch, c));
                    ch = c;
                    idx += 2;
                }
                Stage::Pool => idx += 1,
            }
        }
        out
    }

    /// Channels and side of the feature map entering the classifier.
    pub fn features_out(&self) -> (usize, usize) {
        let pools = self.stages.iter().filter(|s| **s == Stage::Pool).count();
        let ch = self.convs().last().map_or(3, |c| c.2);
        (ch, self.side >> pools)
    }

    /// Every parameter's name and shape, in graph order.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (i, cin, cout) in self.convs() {
            out.push((format!("features.{i}.weight"), vec![cout, cin, 3, 3]));
            out.push((format!("features.{i}.bias"), vec![cout]));
        }
        let (ch, side) = self.features_out();
        out.push((
            "classifier.weight".into(),
            vec![self.classes, ch * side * side],
        ));
        out.push(("classifier.bias".into(), vec![self.classes]));
        out
    }

    /// Seeded initialization: Kaiming-normal convolutions (fan-in, ReLU gain), zero biases, and a
    /// uniform ±1/√fan_in classifier, as PyTorch's VGG does.
    pub fn init(&self, seed: u64) -> Weights {
        let mut rng = crate::rng::Rng::new(seed);
        self.param_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let fan_in: usize = shape[1..].iter().product::<usize>().max(1);
                let values: Vec<f32> = if name.ends_with("bias") {
                    vec![0.0; n]
                } else if name.starts_with("features") {
                    let std = (2.0 / fan_in as f64).sqrt();
                    (0..n).map(|_| (rng.normal() * std) as f32).collect()
                } else {
                    let b = 1.0 / (fan_in as f64).sqrt();
                    (0..n).map(|_| rng.range(-b, b) as f32).collect()
                };
                (name, Param { shape, values })
            })
            .collect()
    }

    /// The ONNX model (opset 13) of this architecture with `weights`, input `input`
    /// `[1, 3, side, side]` RGB in [0, 1], output `logits` `[1, classes]`.
    pub fn to_onnx(&self, weights: &Weights) -> Result<pb::ModelProto, String> {
        let mut initializer = Vec::new();
        for (name, shape) in self.param_shapes() {
            let p = weights
                .get(&name)
                .ok_or_else(|| format!("missing weight '{name}'"))?;
            if p.shape != shape || p.values.len() != shape.iter().product::<usize>() {
                return Err(format!(
                    "weight '{name}' has shape {:?}, expected {shape:?}",
                    p.shape
                ));
            }
            initializer.push(tensor(&name, &shape, &p.values));
        }
        let mut nodes = Vec::new();
        let mut cur = "input".to_string();
        let mut idx = 0;
        for s in &self.stages {
            match *s {
                Stage::Conv(_) => {
                    let out = format!("features.{idx}");
                    let mut n = node(
                        "Conv",
                        &[&cur, &format!("{out}.weight"), &format!("{out}.bias")],
                        &out,
                    );
                    n.attribute = vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])];
                    nodes.push(n);
                    let relu = format!("features.{}", idx + 1);
                    nodes.push(node("Relu", &[&out], &relu));
                    cur = relu;
                    idx += 2;
                }
                Stage::Pool => {
                    let out = format!("features.{idx}");
                    let mut n = node("MaxPool", &[&cur], &out);
                    n.attribute = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
                    nodes.push(n);
                    cur = out;
                    idx += 1;
                }
            }
        }
        nodes.push(node("Flatten", &[&cur], "flatten"));
        let mut gemm = node(
            "Gemm",
            &["flatten", "classifier.weight", "classifier.bias"],
            "logits",
        );
        gemm.attribute = vec![pb::AttributeProto {
            name: "transB".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        }];
        nodes.push(gemm);
        let graph = pb::GraphProto {
            name: self.name.clone(),
            node: nodes,
            initializer,
            input: vec![value_info(
                "input",
                &[1, 3, self.side as i64, self.side as i64],
            )],
            output: vec![value_info("logits", &[1, self.classes as i64])],
            ..Default::default()
        };
        Ok(pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            producer_name: "rws".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(graph),
            metadata_props: vec![pb::StringStringEntryProto {
                key: "rws.input".into(),
                value: format!("NCHW 1x3x{0}x{0} RGB in [0,1]", self.side),
            }],
            ..Default::default()
        })
    }

    /// Serialized ONNX bytes.
    pub fn to_onnx_bytes(&self, weights: &Weights) -> Result<Vec<u8>, String> {
        Ok(self.to_onnx(weights)?.encode_to_vec())
    }

    /// Reads this architecture's weights back from an ONNX model.
    pub fn weights_from_onnx(
        &self,
        model: &crate::onnx::OnnxModel,
    ) -> Result<Weights, crate::onnx::OnnxError> {
        self.param_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let values = model.initializer_f32(&name)?;
                Ok((name, Param { shape, values }))
            })
            .collect()
    }
}

/// A small ResNet-style network for 16×16 inputs, exported for the runtime's tests and
/// benchmarks: a stem (3×3 conv without bias, BatchNorm, ReLU6 as `Clip`), one basic block (two
/// 3×3 convs with BatchNorm and a 1×1 convolution + BatchNorm on the shortcut, joined by `Add`),
/// HardSwish, global average pooling and a linear classifier; opset 14, seeded random weights.
///
/// With `symbolic`, the batch dimension is the symbol `N` and every intermediate tensor carries
/// a `value_info` with symbolic dimensions, as PyTorch's exporter writes with dynamic axes.
/// Returns the model and its parameters `(name, role, shape)` in graph order.
pub fn residual_demo(
    seed: u64,
    symbolic: bool,
) -> (
    pb::ModelProto,
    Vec<(String, crate::format::Role, Vec<usize>)>,
) {
    use crate::format::Role;
    let mut b = GraphBuilder {
        rng: crate::rng::Rng::new(seed),
        params: Vec::new(),
        initializer: Vec::new(),
        nodes: Vec::new(),
    };
    b.conv_bn("stem", "input", (3, 8, 3));
    b.add("relu6.min", Role::Bias, vec![], vec![0.0]);
    b.add("relu6.max", Role::Bias, vec![], vec![6.0]);
    b.op("Clip", &["stem.bn", "relu6.min", "relu6.max"], "stem.relu6");
    b.conv_bn("block.a", "stem.relu6", (8, 16, 3));
    b.op("Relu", &["block.a.bn"], "block.a.relu");
    b.conv_bn("block.b", "block.a.relu", (16, 16, 3));
    b.conv_bn("block.down", "stem.relu6", (8, 16, 1));
    b.op("Add", &["block.b.bn", "block.down.bn"], "block.add");
    b.op("HardSwish", &["block.add"], "block.out");
    b.op("GlobalAveragePool", &["block.out"], "pool");
    b.op("Flatten", &["pool"], "flat");
    let fc_w: Vec<f32> = (0..10 * 16)
        .map(|_| (b.rng.normal() * 0.25) as f32)
        .collect();
    b.add("fc.weight", Role::Weight, vec![10, 16], fc_w);
    b.add("fc.bias", Role::Bias, vec![10], vec![0.01; 10]);
    let mut gemm = node("Gemm", &["flat", "fc.weight", "fc.bias"], "logits");
    gemm.attribute = vec![pb::AttributeProto {
        name: "transB".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    }];
    b.nodes.push(gemm);
    let GraphBuilder {
        mut params,
        initializer,
        nodes,
        ..
    } = b;
    params.retain(|p| !p.0.starts_with("relu6"));
    let batch = if symbolic { None } else { Some(1) };
    let value_info = if symbolic {
        let shapes: [(&str, usize, usize); 6] = [
            ("stem.conv", 8, 16),
            ("stem.relu6", 8, 16),
            ("block.a.relu", 16, 16),
            ("block.add", 16, 16),
            ("block.out", 16, 16),
            ("pool", 16, 1),
        ];
        shapes
            .iter()
            .map(|&(n, c, s)| sym_value_info(n, &[None, Some(c), Some(s), Some(s)]))
            .collect()
    } else {
        Vec::new()
    };
    let graph = pb::GraphProto {
        name: "residual-demo".into(),
        node: nodes,
        initializer,
        input: vec![sym_value_info(
            "input",
            &[batch, Some(3), Some(16), Some(16)],
        )],
        output: vec![sym_value_info("logits", &[batch, Some(10)])],
        value_info,
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 14,
        }],
        producer_name: "rws".into(),
        graph: Some(graph),
        ..Default::default()
    };
    (model, params)
}

/// Accumulates the nodes and initializers of [`residual_demo`].
struct GraphBuilder {
    rng: crate::rng::Rng,
    params: Vec<(String, crate::format::Role, Vec<usize>)>,
    initializer: Vec<pb::TensorProto>,
    nodes: Vec<pb::NodeProto>,
}

impl GraphBuilder {
    fn add(&mut self, name: &str, role: crate::format::Role, shape: Vec<usize>, values: Vec<f32>) {
        self.initializer.push(tensor(name, &shape, &values));
        self.params.push((name.to_string(), role, shape));
    }

    fn op(&mut self, op: &str, inputs: &[&str], output: &str) {
        self.nodes.push(node(op, inputs, output));
    }

    /// Per-channel values `base + spread · r`, r normal or uniform in [0, 1).
    fn channel_values(&mut self, n: usize, base: f64, spread: f64, uniform: bool) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let r = if uniform {
                    self.rng.uniform()
                } else {
                    self.rng.normal()
                };
                (base + spread * r) as f32
            })
            .collect()
    }

    /// `{prefix}.conv` (k×k, same padding, no bias, Kaiming-normal), then BatchNorm to
    /// `{prefix}.bn`.
    fn conv_bn(&mut self, prefix: &str, input: &str, (cin, cout, k): (usize, usize, usize)) {
        use crate::format::Role;
        let std = (2.0 / (cin * k * k) as f64).sqrt();
        let w: Vec<f32> = (0..cout * cin * k * k)
            .map(|_| (self.rng.normal() * std) as f32)
            .collect();
        let weight = format!("{prefix}.conv.weight");
        self.add(&weight, Role::Weight, vec![cout, cin, k, k], w);
        let conv_out = format!("{prefix}.conv");
        let mut c = node("Conv", &[input, &weight], &conv_out);
        let p = (k / 2) as i64;
        c.attribute = vec![
            ints("kernel_shape", &[k as i64, k as i64]),
            ints("pads", &[p, p, p, p]),
        ];
        self.nodes.push(c);
        let bn = |s: &str| format!("{prefix}.bn.{s}");
        let values = [
            (
                Role::BnScale,
                "weight",
                self.channel_values(cout, 1.0, 0.1, false),
            ),
            (
                Role::BnBias,
                "bias",
                self.channel_values(cout, 0.0, 0.1, false),
            ),
            (
                Role::BnMean,
                "running_mean",
                self.channel_values(cout, 0.0, 0.1, false),
            ),
            (
                Role::BnVar,
                "running_var",
                self.channel_values(cout, 0.5, 1.0, true),
            ),
        ];
        let mut inputs = vec![conv_out];
        for (role, name, v) in values {
            self.add(&bn(name), role, vec![cout], v);
            inputs.push(bn(name));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.op("BatchNormalization", &refs, &format!("{prefix}.bn"));
    }
}

/// A float tensor value whose `None` dimensions are the symbol `N`.
fn sym_value_info(name: &str, dims: &[Option<usize>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let mut v = value_info(name, &[]);
    if let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = Some(pb::TensorShapeProto {
            dim: dims
                .iter()
                .map(|d| Dimension {
                    value: Some(match d {
                        Some(n) => Value::DimValue(*n as i64),
                        None => Value::DimParam("N".into()),
                    }),
                    ..Default::default()
                })
                .collect(),
        });
    }
    v
}

/// An f32 initializer (`raw_data`, little-endian).
pub fn tensor(name: &str, shape: &[usize], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: bytemuck::cast_slice(values).to_vec(),
        ..Default::default()
    }
}

/// A node with one output, named after it.
pub fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.to_string(),
        name: output.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        ..Default::default()
    }
}

/// An INTS attribute.
pub fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A float tensor input/output with fixed dims.
pub fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vgg16_shallow_layers_are_the_papers() {
        let convs: Vec<usize> = Arch::vgg16().convs().iter().map(|c| c.0).take(5).collect();
        assert_eq!(convs, [0, 2, 5, 7, 10]);
        let shallow: usize = Arch::vgg16()
            .param_shapes()
            .iter()
            .take(10)
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(shallow, 555_328);
    }
}
