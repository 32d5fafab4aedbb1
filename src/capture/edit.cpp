#include <strata/capture/edit.h>

#include <ATen/ATen.h>

#include <strata/core/error.h>

#include <sstream>

namespace strata {

namespace {
std::string shape_str(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}
}  // namespace

Edit Edit::zero() { return Edit(Kind::Zero); }
Edit Edit::mean() { return Edit(Kind::Mean); }
Edit Edit::mean_of(at::Tensor mean) {
  STRATA_CHECK(mean.defined(), "Edit::mean_of: undefined tensor");
  Edit e(Kind::Mean);
  e.tensor_ = std::move(mean);
  return e;
}
Edit Edit::patch(TensorMap cache) {
  Edit e(Kind::Patch);
  e.cache_ = std::make_shared<TensorMap>(std::move(cache));
  return e;
}
Edit Edit::patch_with(at::Tensor value) {
  STRATA_CHECK(value.defined(), "Edit::patch_with: undefined tensor");
  Edit e(Kind::Patch);
  e.tensor_ = std::move(value);
  return e;
}
Edit Edit::add(at::Tensor vector, double scale) {
  STRATA_CHECK(vector.defined(), "Edit::add: undefined steering vector");
  Edit e(Kind::Add);
  e.tensor_ = std::move(vector);
  e.scale_ = scale;
  return e;
}
Edit Edit::skip() { return Edit(Kind::Skip); }
Edit Edit::callback(EditFn fn) {
  STRATA_CHECK(static_cast<bool>(fn), "Edit::callback: empty function");
  Edit e(Kind::Callback);
  e.fn_ = std::move(fn);
  return e;
}

Edit& Edit::at(int64_t dim, std::vector<int64_t> indices) {
  STRATA_CHECK(!indices.empty(), "Edit::at: no indices given for dim ", dim);
  dim_ = dim;
  indices_ = std::move(indices);
  return *this;
}

std::string Edit::describe() const {
  static const char* names[] = {"zero", "mean", "patch", "add", "skip", "callback"};
  std::string s = names[static_cast<int>(kind_)];
  if (dim_) {
    s += " at dim " + std::to_string(*dim_) + " [";
    for (size_t i = 0; i < indices_.size(); ++i) s += (i ? "," : "") + std::to_string(indices_[i]);
    s += "]";
  }
  return s;
}

// The full replacement tensor (before restricting to indices), matching the PyTorch reference:
// zeros_like, mean(0, keepdim).expand_as, cache value, out + scale * vector, input, fn(out).
at::Tensor Edit::replacement(const HookPoint& point, const at::Tensor& value,
                             const at::Tensor& input) const {
  const std::string where = "Edit(" + describe() + ") at '" + point.key() + "'";
  auto check_broadcast = [&](const at::Tensor& t, const char* what) {
    STRATA_CHECK(at::is_expandable_to(t.sizes(), value.sizes()), where, ": ", what, " of shape ",
                 shape_str(t), " does not broadcast to the activation's shape ", shape_str(value));
  };
  switch (kind_) {
    case Kind::Zero:
      return at::zeros_like(value);
    case Kind::Mean: {
      if (tensor_.defined()) {
        check_broadcast(tensor_, "mean");
        return tensor_.to(value.device(), value.scalar_type()).expand_as(value);
      }
      STRATA_CHECK(value.dim() >= 1, where, ": mean over dim 0 of a 0-dim tensor");
      return value.mean(0, /*keepdim=*/true).expand_as(value);
    }
    case Kind::Patch: {
      at::Tensor src = tensor_;
      if (!src.defined()) {
        const std::string key = point.key();
        STRATA_CHECK(cache_->contains(key), where, ": the patch cache has no tensor '", key,
                     "' (it holds ", cache_->size(), " tensors)");
        src = cache_->at(key);
        STRATA_CHECK(src.sizes() == value.sizes(), where, ": cached tensor has shape ",
                     shape_str(src), ", the activation has shape ", shape_str(value));
      } else {
        check_broadcast(src, "patch value");
      }
      return src.to(value.device(), value.scalar_type()).expand_as(value);
    }
    case Kind::Add: {
      check_broadcast(tensor_, "steering vector");
      return value + tensor_.to(value.device(), value.scalar_type()) * scale_;
    }
    case Kind::Skip:
      STRATA_CHECK(input.defined(), where,
                   ": the module call has no tensor input to pass through");
      STRATA_CHECK(input.sizes() == value.sizes(), where, ": cannot skip module '", point.module,
                   "': its input has shape ", shape_str(input), " but its output has shape ",
                   shape_str(value));
      return input;
    case Kind::Callback: {
      at::Tensor out = fn_(point, value);
      STRATA_CHECK(out.defined(), where, ": callback returned an undefined tensor");
      return out;
    }
  }
  return value;
}

at::Tensor Edit::apply(const HookPoint& point, const at::Tensor& value,
                       const at::Tensor& input) const {
  if (!dim_) {
    at::Tensor r = replacement(point, value, input);
    // An expanded view must not escape: downstream in-place ops would write through it.
    return (kind_ == Kind::Mean || kind_ == Kind::Patch) ? r.clone() : r;
  }
  const int64_t nd = value.dim();
  int64_t dim = *dim_ < 0 ? *dim_ + nd : *dim_;
  STRATA_CHECK(dim >= 0 && dim < nd, "Edit(", describe(), ") at '", point.key(), "': dim ", *dim_,
               " is out of range for an activation of shape ", shape_str(value));
  const int64_t size = value.size(dim);
  for (int64_t i : indices_) {
    STRATA_CHECK(i >= -size && i < size, "Edit(", describe(), ") at '", point.key(), "': index ",
                 i, " is out of range for dim ", dim, " of size ", size, " (shape ",
                 shape_str(value), ")");
  }
  std::vector<int64_t> norm(indices_);
  for (auto& i : norm) i = i < 0 ? i + size : i;
  at::Tensor idx = at::tensor(norm, at::TensorOptions().dtype(at::kLong)).to(value.device());
  if (kind_ == Kind::Zero) return value.index_fill(dim, idx, 0);
  if (kind_ == Kind::Add) {
    at::Tensor delta = tensor_.to(value.device(), value.scalar_type()) * scale_;
    return value.clone().index_add_(dim, idx, delta.expand_as(value).index_select(dim, idx));
  }
  at::Tensor r = replacement(point, value, input);
  return value.index_copy(dim, idx, r.index_select(dim, idx));
}

}  // namespace strata
