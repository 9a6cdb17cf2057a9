//! Building ONNX graphs by hand: f32 initializers, nodes, attributes, and typed inputs and
//! outputs (fixed or with a symbolic batch). The exporters (`rws-lab`'s architectures), the
//! split's suffix inputs and the test fixtures all write models with these.

use super::pb;

/// A float tensor value whose `None` dimensions are the symbol `N`.
pub fn sym_value_info(name: &str, dims: &[Option<usize>]) -> pb::ValueInfoProto {
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
        raw_data: super::f32_raw(values),
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
