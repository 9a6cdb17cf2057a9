//! Model architectures rws trains and exports: VGG-style stacks of 3×3 convolutions, ReLU and 2×2
//! max-pooling, then one linear classifier, written to ONNX with `rws_runtime::onnx::build`.
//!
//! Tensor names follow PyTorch's `nn.Sequential` numbering (`features.0.weight`, `features.2.weight`,
//! `features.5.weight`, …, `classifier.weight`), so a signature made here names the same tensors as
//! one made from a torchvision-style VGG export, and VGG-16's first five convolutions are
//! `features.0/2/5/7/10` as in docs/design.md §1. The ONNX writer needs no training backend: it takes the
//! weights as named f32 vectors, so tests and tools build real models without candle.

use std::collections::BTreeMap;

use prost::Message;
use rws_runtime::onnx::build::{ints, node, tensor, value_info};
use rws_runtime::onnx::pb;

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
    /// A BatchNormalization after every convolution (PyTorch's `vgg*_bn` numbering: conv `i`,
    /// BatchNorm `i+1`, ReLU `i+2`).
    pub batch_norm: bool,
}

/// A BatchNormalization's parameters, in ONNX input order, by their PyTorch names.
const BN_PARAMS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// Stages from a torchvision-style configuration: a channel count is a convolution, 0 a pool.
fn stages(cfg: &[usize]) -> Vec<Stage> {
    cfg.iter()
        .map(|&c| if c == 0 { Stage::Pool } else { Stage::Conv(c) })
        .collect()
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
        Arch {
            name: "vgg-demo".into(),
            side: 32,
            classes: 10,
            stages: stages(&[8, 8, 0, 16, 16, 0, 32, 0]),
            batch_norm: false,
        }
    }

    /// The deeper demo network: eight convolutions (8-8-16-16-16-32-32-32) and three pools on
    /// 32×32, so that K = 5 patches only the shallow part (5 of 9 weight layers), the setting of
    /// the paper's Fig. 2 and Table 1; about twice the demo's multiply-adds. Issue 16's lever
    /// study (docs/results/levers/) trains it beside the demo network.
    pub fn demo_deep() -> Self {
        Arch {
            name: "vgg-demo-deep".into(),
            side: 32,
            classes: 10,
            stages: stages(&[8, 8, 0, 16, 16, 16, 0, 32, 32, 32, 0]),
            batch_norm: false,
        }
    }

    /// VGG-16 for 32×32 inputs (CIFAR layout), 14.7 M parameters; for a CUDA host.
    pub fn vgg16() -> Self {
        let cfg = [
            64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
        ];
        Arch {
            name: "vgg16".into(),
            side: 32,
            classes: 10,
            stages: stages(&cfg),
            batch_norm: false,
        }
    }

    /// VGG-11 with BatchNorm at half width for 224×224 inputs and 1000 classes (ImageNet
    /// layout), 15.0 M parameters, ~1.9 G multiply-adds: a model of the size and shape edge
    /// deployments run, with the BatchNorm layers tract folds into the convolutions.
    pub fn vgg11_bn_224() -> Self {
        let cfg = [32, 0, 64, 0, 128, 128, 0, 256, 256, 0, 256, 256, 0];
        Arch {
            name: "vgg11-bn-224".into(),
            side: 224,
            classes: 1000,
            stages: stages(&cfg),
            batch_norm: true,
        }
    }

    /// By name: `demo`, `demo-deep`, `vgg16` or `vgg11-bn-224`.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "demo" | "vgg-demo" => Some(Self::demo()),
            "demo-deep" | "vgg-demo-deep" => Some(Self::demo_deep()),
            "vgg16" => Some(Self::vgg16()),
            "vgg11-bn-224" => Some(Self::vgg11_bn_224()),
            _ => None,
        }
    }

    /// Sequential indices one convolution takes (conv, [BatchNorm,] ReLU).
    fn conv_step(&self) -> usize {
        if self.batch_norm {
            3
        } else {
            2
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
                    idx += self.conv_step();
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
            if self.batch_norm {
                for p in BN_PARAMS {
                    out.push((format!("features.{}.{p}", i + 1), vec![cout]));
                }
            }
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
        let mut rng = rws_rng::Rng::new(seed);
        self.param_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let fan_in: usize = shape[1..].iter().product::<usize>().max(1);
                let values: Vec<f32> = if name.ends_with("running_var")
                    || (shape.len() == 1 && name.ends_with("weight"))
                {
                    vec![1.0; n]
                } else if name.ends_with("bias") || name.ends_with("running_mean") {
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
                    let mut act = out;
                    if self.batch_norm {
                        let bn = format!("features.{}", idx + 1);
                        let mut inputs = vec![act.clone()];
                        inputs.extend(BN_PARAMS.iter().map(|p| format!("{bn}.{p}")));
                        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                        nodes.push(node("BatchNormalization", &refs, &bn));
                        act = bn;
                    }
                    let relu = format!("features.{}", idx + self.conv_step() - 1);
                    nodes.push(node("Relu", &[&act], &relu));
                    cur = relu;
                    idx += self.conv_step();
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
        model: &rws_runtime::onnx::OnnxModel,
    ) -> Result<Weights, rws_runtime::onnx::OnnxError> {
        self.param_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let values = model.initializer_f32(&name)?;
                Ok((name, Param { shape, values }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deep_demo_leaves_its_deep_layers_out_of_k5() {
        let deep = Arch::demo_deep();
        let weights: Vec<String> = deep
            .param_shapes()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.ends_with(".weight"))
            .collect();
        // 8 convolutions and the classifier: K = 5 stops at the third 16-channel convolution.
        assert_eq!(weights.len(), 9);
        assert_eq!(weights[4], "features.9.weight");
        assert_eq!(Arch::by_name("demo-deep"), Some(deep));
    }

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
