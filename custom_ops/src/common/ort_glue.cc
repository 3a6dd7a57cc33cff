// Input access and messages for the onnxruntime glue (see ort_glue.h).
#include "common/ort_glue.h"

namespace fqvit {
namespace glue {

const char* type_name(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return "uint16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return "int16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "double";
    default: return "other";
  }
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

Input get_input(const Ort::KernelContext& ctx, size_t index, const char* name, ONNXTensorElementDataType type) {
  require(index < ctx.GetInputCount(), [&] { return std::string("missing input ") + name; });
  Ort::ConstValue value = ctx.GetInput(index);
  require(value != nullptr, [&] { return std::string("missing input ") + name; });
  require(value.IsTensor(), [&] { return std::string("input ") + name + " must be a tensor"; });
  const Ort::TensorTypeAndShapeInfo info = value.GetTensorTypeAndShapeInfo();
  const ONNXTensorElementDataType actual = info.GetElementType();
  require(actual == type,
          [&] { return std::string("input ") + name + " must be " + type_name(type) + ", got " + type_name(actual); });
  Input in;
  in.name = name;
  in.type = type;
  in.shape = info.GetShape();
  in.numel = 1;
  for (const int64_t d : in.shape) {
    require(d >= 0, [&] { return std::string("input ") + name + " has a negative dimension"; });
    in.numel *= d;
  }
  in.data = value.GetTensorRawData();
  return in;
}

namespace {
// `in`, checked to hold one element of `type` (the type check guards the glue, not the user: onnxruntime has already
// matched the node's types to spec.h).
const Input& scalar(const Input& in, ONNXTensorElementDataType type) {
  require(in.type == type, [&] {
    return std::string("input ") + in.name + " is " + type_name(in.type) + ", read as " + type_name(type);
  });
  require(in.shape.size() <= 1 && in.numel == 1, [&] {
    return std::string("input ") + in.name + " must be a scalar (one element), got shape " + shape_str(in.shape);
  });
  return in;
}
}  // namespace

float scalar_f32(const Input& in) { return *scalar(in, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT).as<float>(); }

void require_per_channel(const Input& in, int64_t n, const char* axis, const char* of, const std::string& context) {
  require((in.shape.size() == 1 && in.numel == n) || (in.shape.size() <= 1 && in.numel == 1), [&] {
    return std::string(in.name) + " must have shape [" + axis + "] = " + shape_str({n}) + " (" + axis + " = " + of +
           ") or be a scalar (one element), got " + shape_str(in.shape) + context;
  });
}

int32_t scalar_code(const Input& in) {
  if (in.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8) return *scalar(in, in.type).as<int8_t>();
  return *scalar(in, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8).as<uint8_t>();
}

}  // namespace glue
}  // namespace fqvit
