// safetensors reader and writer. The format (https://github.com/huggingface/safetensors):
//   u64 little-endian N | N bytes of UTF-8 JSON header | data section
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the start of the data section) and may hold "__metadata__": {string: string}.
//
// The reader treats its input as hostile: every length is checked against the bytes actually
// present before anything is allocated, so a header that claims a [2^40] tensor over 4 bytes of
// data is rejected without allocating, and every failure is a strata::Error naming the source.
#include <ATen/ATen.h>
#include <fcntl.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

// Tensor bytes are copied as they lie in memory; the format is little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "strata's safetensors code assumes a little-endian host");

namespace strata {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kMetadataKey = "__metadata__";
// Same limit as the reference implementation (safetensors' MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three levels deep (root -> entry -> shape); the limit only keeps hostile
// input such as "[[[[..." from building a huge tree.
constexpr int kMaxJsonDepth = 64;
// No real tensor has more dimensions; the limit keeps "shape": [1, 1, ... x 10^7] from turning
// into a huge size vector.
constexpr size_t kMaxRank = 64;

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  uint64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", at::kFloat, 4},  {"F16", at::kHalf, 2}, {"BF16", at::kBFloat16, 2},
    {"F64", at::kDouble, 8}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},  {"I8", at::kChar, 1},  {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const DtypeInfo* dtype_by_type(at::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

std::string supported_dtype_list() {
  std::string out;
  for (const auto& d : kDtypes) {
    if (!out.empty()) out += ", ";
    out += d.name;
  }
  return out;
}

// Shortened JSON text of `value` for error messages.
std::string brief(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  constexpr size_t kMax = 60;
  if (text.size() > kMax) text = text.substr(0, kMax) + "...";
  return text;
}

// `text` in double quotes, shortened: names in hostile headers can be megabytes long.
std::string quoted(const std::string& text) {
  constexpr size_t kMax = 80;
  return "\"" + (text.size() > kMax ? text.substr(0, kMax) + "..." : text) + "\"";
}

// Throws strata::Error("<caller>: '<source>': <what>").
template <typename... Args>
[[noreturn]] void fail(const char* caller, const std::string& source, const Args&... what) {
  throw Error(str_cat(caller, ": '", source, "': ", what...));
}

// True (and *out set) when `value` is an integer in [0, limit].
bool as_count(const Json& value, uint64_t limit, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
  } else if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
  } else {
    return false;
  }
  return *out <= limit;
}

// Parses the header, rejecting duplicate keys (which nlohmann would silently collapse) and
// nesting deeper than kMaxJsonDepth.
Json parse_header(const char* text, size_t size, const char* caller, const std::string& source) {
  struct Reject {
    std::string why;
  };
  std::vector<std::set<std::string>> keys_per_object;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) {
          throw Reject{str_cat("header JSON nests deeper than ", kMaxJsonDepth, " levels")};
        }
        if (event == Json::parse_event_t::object_start) keys_per_object.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        keys_per_object.pop_back();
        break;
      case Json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!keys_per_object.back().insert(key).second) {
          throw Reject{str_cat("header has duplicate key ", quoted(key))};
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  // nlohmann reads a NUL byte outside a string as the end of input and skips a leading byte
  // order mark; JSON allows neither, and accepting them would let bytes hide in the header.
  if (const void* nul = std::memchr(text, '\0', size)) {
    fail(caller, source, "header is not valid UTF-8 JSON: NUL byte at header offset ",
         static_cast<const char*>(nul) - text);
  }
  if (size >= 3 && std::memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
    fail(caller, source, "header is not valid UTF-8 JSON: it starts with a byte order mark");
  }
  try {
    return Json::parse(text, text + size, callback);
  } catch (const Reject& r) {
    fail(caller, source, r.why);
  } catch (const Json::exception& e) {
    fail(caller, source, "header is not valid UTF-8 JSON: ", e.what());
  }
}

// One header entry, validated.
struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
  size_t header_index;
};

Entry parse_entry(const std::string& name, const Json& info, uint64_t data_size, const char* caller,
                  const std::string& source) {
  auto bad = [&](const auto&... what) {
    fail(caller, source, "tensor ", quoted(name), ": ", what...);
  };
  if (!info.is_object()) bad("entry is not an object but ", brief(info));
  // Other keys are ignored, as the reference implementation does, so that files carrying
  // extension fields still load.
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!info.contains(field)) bad("missing \"", field, "\" in ", brief(info));
  }
  Entry e;
  e.name = name;

  const Json& dtype = info["dtype"];
  if (!dtype.is_string()) bad("dtype is not a string but ", brief(dtype));
  e.dtype = dtype_by_name(dtype.get_ref<const std::string&>());
  if (e.dtype == nullptr) {
    bad("unknown dtype ", quoted(dtype.get_ref<const std::string&>()),
        " (supported: ", supported_dtype_list(), ")");
  }

  const Json& shape = info["shape"];
  if (!shape.is_array()) bad("shape is not an array but ", brief(shape));
  if (shape.size() > kMaxRank) bad("shape has ", shape.size(), " dimensions, more than ", kMaxRank);
  // The product of the non-zero dimensions must fit in int64 even when a zero makes numel 0,
  // so that LibTorch's stride computation cannot overflow either.
  uint64_t product = 1;
  bool has_zero = false;
  for (const Json& dim : shape) {
    uint64_t d = 0;
    if (!as_count(dim, std::numeric_limits<int64_t>::max(), &d)) {
      bad("shape ", brief(shape), " has an entry that is not a non-negative integer: ", brief(dim));
    }
    if (d == 0) has_zero = true;
    if (d > 1 && __builtin_mul_overflow(product, d, &product)) product = UINT64_MAX;
    if (product > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      bad("shape ", brief(shape), " has too many elements (overflow)");
    }
    e.shape.push_back(static_cast<int64_t>(d));
  }
  const uint64_t numel = has_zero ? 0 : product;
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, e.dtype->size, &nbytes)) {
    bad("shape ", brief(shape), " of ", e.dtype->name, " is too large (byte size overflows)");
  }

  const Json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !as_count(offsets[0], UINT64_MAX, &e.begin) ||
      !as_count(offsets[1], UINT64_MAX, &e.end)) {
    bad("data_offsets must be two non-negative integers, got ", brief(offsets));
  }
  if (e.begin > e.end) bad("data_offsets ", brief(offsets), " has begin > end");
  if (e.end > data_size) {
    bad("data_offsets ", brief(offsets), " end beyond the data section of ", data_size, " bytes");
  }
  if (e.end - e.begin != nbytes) {
    bad("data_offsets ", brief(offsets), " span ", e.end - e.begin, " bytes but ", e.dtype->name,
        " shape ", brief(shape), " needs ", nbytes, " bytes (byte size mismatch)");
  }
  return e;
}

SafetensorsFile parse(const std::string& bytes, const std::string& source, const char* caller) {
  if (bytes.size() < 8) {
    fail(caller, source, "file is ", bytes.size(),
         " bytes, shorter than the 8-byte header length prefix");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) {
    header_len = (header_len << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  }
  if (header_len > kMaxHeaderBytes) {
    fail(caller, source, "header length ", header_len, " is absurd (limit ", kMaxHeaderBytes,
         " bytes)");
  }
  if (header_len > bytes.size() - 8) {
    fail(caller, source, "header length ", header_len, " is larger than the file (",
         bytes.size() - 8, " bytes after the length prefix)");
  }
  const char* data = bytes.data() + 8 + header_len;
  const uint64_t data_size = bytes.size() - 8 - header_len;

  const Json header = parse_header(bytes.data() + 8, header_len, caller, source);
  if (!header.is_object()) fail(caller, source, "header is not a JSON object but ", brief(header));

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) {
      // null is what the reference implementation writes for "no metadata".
      if (info.is_null()) continue;
      if (!info.is_object()) {
        fail(caller, source, "__metadata__ is not a string->string map but ", brief(info));
      }
      for (const auto& [key, value] : info.items()) {
        if (!value.is_string()) {
          fail(caller, source, "__metadata__ is not a string->string map: value of ", quoted(key),
               " is ", brief(value));
        }
        file.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    entries.push_back(parse_entry(name, info, data_size, caller, source));
    entries.back().header_index = entries.size() - 1;
  }

  // Layout policy, the same as the reference implementation's: sorted by offset, the regions
  // must tile the data section exactly. Overlaps (which would alias tensors) and offsets out of
  // range are always errors; gaps between regions and trailing bytes after the last one are
  // rejected too, since no conforming writer produces them and they usually mean corruption.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.header_index < b.header_index;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < covered) {
      fail(caller, source, "tensor ", quoted(e.name), " data_offsets [", e.begin, ",", e.end,
           "] overlap tensor ", quoted(previous->name), " [", previous->begin, ",", previous->end,
           "]");
    }
    if (e.begin > covered) {
      fail(caller, source, "gap of ", e.begin - covered, " unused bytes in the data section before",
           " tensor ", quoted(e.name), " at offset ", e.begin);
    }
    covered = e.end;
    previous = &e;
  }
  if (covered != data_size) {
    fail(caller, source, data_size - covered, " trailing bytes after the last tensor (data ",
         "section is ", data_size, " bytes, tensors cover ", covered, ")");
  }

  for (const Entry& e : entries) {
    const uint8_t* src = reinterpret_cast<const uint8_t*>(data) + e.begin;
    const size_t nbytes = e.end - e.begin;
    if (e.dtype->type == at::kBool) {
      for (size_t i = 0; i < nbytes; ++i) {
        if (src[i] > 1) {
          fail(caller, source, "tensor ", quoted(e.name), ": BOOL byte ", i, " is ",
               static_cast<int>(src[i]), ", not 0 or 1");
        }
      }
    }
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type));
    if (nbytes > 0) std::memcpy(t.data_ptr(), src, nbytes);
    file.tensors.insert(e.name, t);
  }
  return file;
}

std::string errno_text(int err) { return std::system_category().message(err); }

// Writes all of `bytes` to `fd`; returns 0 or an errno value.
int write_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

void TensorMap::insert(const std::string& name, const at::Tensor& tensor) {
  STRATA_CHECK(tensor.defined(), "TensorMap::insert: tensor \"", name, "\" is undefined");
  auto it = tensors_.find(name);
  if (it != tensors_.end()) {
    it->second = tensor;
    return;
  }
  tensors_.emplace(name, tensor);
  names_.push_back(name);
}

bool TensorMap::contains(const std::string& name) const { return tensors_.count(name) > 0; }

const at::Tensor& TensorMap::at(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it != tensors_.end()) return it->second;
  constexpr size_t kShown = 10;
  std::string present;
  for (size_t i = 0; i < names_.size() && i < kShown; ++i) {
    present += str_cat(i == 0 ? "" : ", ", "\"", names_[i], "\"");
  }
  if (names_.size() > kShown) present += str_cat(", ... (", names_.size() - kShown, " more)");
  throw Error(str_cat("TensorMap::at: no tensor named \"", name, "\"; ", names_.size(), " present",
                      names_.empty() ? "" : ": ", present));
}

std::string to_safetensors_bytes(const TensorMap& tensors,
                                 const std::map<std::string, std::string>& metadata) {
  constexpr const char* kCaller = "to_safetensors_bytes";
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header[kMetadataKey] = std::move(meta);
  }
  std::vector<at::Tensor> cpu;
  cpu.reserve(static_cast<size_t>(tensors.size()));
  uint64_t offset = 0;
  for (const std::string& name : tensors.names()) {
    STRATA_CHECK(name != kMetadataKey, kCaller, ": \"", kMetadataKey,
                 "\" is reserved and cannot name a tensor");
    const at::Tensor& t = tensors.at(name);
    const DtypeInfo* dtype = dtype_by_type(t.scalar_type());
    STRATA_CHECK(dtype != nullptr, kCaller, ": tensor \"", name, "\" has dtype ", t.scalar_type(),
                 ", which safetensors cannot hold here (supported: ", supported_dtype_list(), ")");
    STRATA_CHECK(t.layout() == at::kStrided, kCaller, ": tensor \"", name, "\" has layout ",
                 t.layout(), "; only dense (strided) tensors can be written");
    at::Tensor c;
    try {
      c = t.to(at::kCPU).resolve_conj().resolve_neg().contiguous();
    } catch (const c10::Error& e) {
      throw Error(str_cat(kCaller, ": cannot copy tensor \"", name, "\" on ", t.device(),
                          " to CPU: ", e.what_without_backtrace()));
    }
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * dtype->size;
    header[name] = {{"dtype", dtype->name},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(std::move(c));
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {
    throw Error(
        str_cat(kCaller, ": a tensor name or metadata string is not valid UTF-8: ", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + text.size() + offset);
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += text;
  for (const at::Tensor& c : cpu) {
    const size_t nbytes = static_cast<size_t>(c.numel()) * c.element_size();
    if (nbytes > 0) out.append(static_cast<const char*>(c.data_ptr()), nbytes);
  }
  return out;
}

SafetensorsFile from_safetensors_bytes(const std::string& bytes, const std::string& source) {
  return parse(bytes, source, "from_safetensors_bytes");
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  constexpr const char* kCaller = "save_safetensors";
  const std::string bytes = to_safetensors_bytes(tensors, metadata);

  // The temporary sits next to the target so that rename() stays within one filesystem and
  // readers never see a half-written file under `path`.
  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = str_cat(path, ".tmp.", ::getpid(), ".", counter.fetch_add(1));
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    fail(kCaller, path, "cannot create temporary file '", tmp, "': ", errno_text(errno));
  }
  int err = write_all(fd, bytes);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    fail(kCaller, path, "cannot write temporary file '", tmp, "': ", errno_text(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    fail(kCaller, path, "cannot rename '", tmp, "' into place: ", errno_text(err));
  }
}

SafetensorsFile load_safetensors(const std::string& path) {
  constexpr const char* kCaller = "load_safetensors";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(kCaller, path, "cannot open: ", errno_text(errno));
  if (!S_ISREG(st.st_mode)) fail(kCaller, path, "cannot open: not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(kCaller, path, "cannot open for reading: ", errno_text(errno));
  std::string bytes;
  bytes.resize(static_cast<size_t>(st.st_size));
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<size_t>(in.gcount()) != bytes.size()) {
    fail(kCaller, path, "read ", in.gcount(), " of ", bytes.size(), " bytes (unreadable or ",
         "changed while reading)");
  }
  return parse(bytes, path, kCaller);
}

}  // namespace strata
