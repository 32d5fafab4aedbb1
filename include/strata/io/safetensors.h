// Reading and writing safetensors files: the activation and weight format that Python's
// `safetensors`, numpy and torch open without strata. A file is an 8-byte little-endian header
// length, a JSON header (name -> dtype, shape, data_offsets; optional "__metadata__"), then the
// raw little-endian tensor bytes. strata writes exactly that, and checks every field it reads.
//
//   strata::TensorMap t;
//   t.insert("blocks.0", activation);
//   strata::save_safetensors("acts.safetensors", t, {{"model", "gpt.pt"}});
//   auto file = strata::load_safetensors("acts.safetensors");
//   at::Tensor x = file.tensors.at("blocks.0");
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace strata {

/// Name -> tensor map that remembers insertion order (files are written in that order).
class TensorMap {
 public:
  /// Adds or replaces `name`; a replaced entry keeps its original position.
  void insert(const std::string& name, const at::Tensor& tensor);
  /// True when `name` is present.
  bool contains(const std::string& name) const;
  /// The tensor stored under `name`; throws strata::Error naming the missing key and the keys present.
  const at::Tensor& at(const std::string& name) const;
  /// Names in insertion order.
  const std::vector<std::string>& names() const { return names_; }
  /// Number of tensors.
  int64_t size() const { return static_cast<int64_t>(names_.size()); }
  /// True when the map holds no tensors.
  bool empty() const { return names_.empty(); }

 private:
  std::vector<std::string> names_;
  std::map<std::string, at::Tensor> tensors_;
};

/// What a safetensors file holds: its tensors (in file order) and its string metadata.
struct SafetensorsFile {
  TensorMap tensors;
  std::map<std::string, std::string> metadata;
};

/// Serializes tensors to the bytes of a safetensors file. Supported dtypes: float32 (F32),
/// float16 (F16), bfloat16 (BF16), float64 (F64), int64 (I64), int32 (I32), int16 (I16),
/// int8 (I8), uint8 (U8), bool (BOOL). Tensors may live on any device and be non-contiguous.
std::string to_safetensors_bytes(const TensorMap& tensors,
                                 const std::map<std::string, std::string>& metadata = {});

/// Parses the bytes of a safetensors file; `source` names it in error messages. Every field is
/// checked (header length, JSON, dtype, shape, offsets, overlaps); problems throw strata::Error.
SafetensorsFile from_safetensors_bytes(const std::string& bytes,
                                       const std::string& source = "<memory>");

/// Writes a safetensors file (atomically: to a temporary name, then renamed).
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// Reads a safetensors file; errors name the path and what was wrong.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace strata
