#include <ATen/ATen.h>
#include <strata/core/error.h>
#include <strata/lrp/relevance_image.h>
#include <strata/report/heatmap.h>

#include <algorithm>
#include <cmath>

namespace strata {

Image relevance_image(const at::Tensor& relevance, const RelevanceImageOptions& options) {
  STRATA_CHECK(relevance.defined() && (relevance.dim() == 2 || relevance.dim() == 3),
               "relevance_image: relevance must be [C, H, W] or [H, W], got ",
               relevance.defined() ? relevance.dim() : 0, " dimensions");
  STRATA_CHECK(options.scale >= 1 && options.scale <= 64, "relevance_image: scale ", options.scale,
               " is outside 1..64");
  at::Tensor r = relevance.detach().to(at::kCPU, at::kDouble);
  if (r.dim() == 3) r = r.sum(0);
  const int64_t H = r.size(0), W = r.size(1), s = options.scale;
  STRATA_CHECK(H > 0 && W > 0, "relevance_image: empty relevance");
  at::Tensor pic;
  if (options.image.defined()) {
    pic = options.image.detach().to(at::kCPU, at::kDouble);
    STRATA_CHECK(pic.dim() == 3, "relevance_image: image must be [3, H, W] or [H, W, 3]");
    if (pic.size(0) == 3 && pic.size(2) != 3) pic = pic.permute({1, 2, 0});
    STRATA_CHECK(pic.size(0) == H && pic.size(1) == W && pic.size(2) == 3,
                 "relevance_image: image has shape [", pic.size(0), ", ", pic.size(1), ", ",
                 pic.size(2), "] but the relevance is ", H, " x ", W);
    pic = pic.clamp(0, 255).contiguous();
  }
  double m = options.symmetric_max;
  if (m <= 0) m = r.abs().max().item<double>();
  if (!(m > 0)) m = 1;
  const int64_t gap = 4 * s > 8 ? 8 : 4 * s;
  const int64_t title_h = options.title.empty() ? 0 : Image::text_height(1) + 6;
  const int64_t panels = pic.defined() ? 2 : 1;
  const int64_t width =
      std::max<int64_t>(panels * W * s + (panels - 1) * gap,
                        options.title.empty() ? 1 : Image::text_width(options.title, 1) + 4);
  Image img(width, H * s + title_h, Rgb{255, 255, 255});
  if (!options.title.empty()) img.draw_text(2, 3, options.title, Rgb{0, 0, 0}, 1);
  const auto ra = r.accessor<double, 2>();
  int64_t x0 = 0;
  if (pic.defined()) {
    const auto pa = pic.accessor<double, 3>();
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const Rgb c{static_cast<uint8_t>(std::lround(pa[y][x][0])),
                    static_cast<uint8_t>(std::lround(pa[y][x][1])),
                    static_cast<uint8_t>(std::lround(pa[y][x][2]))};
        img.fill_rect(x * s, title_h + y * s, s, s, c);
      }
    x0 = W * s + gap;
  }
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const double t = 0.5 + 0.5 * ra[y][x] / m;
      img.fill_rect(x0 + x * s, title_h + y * s, s, s, colormap(Colormap::Diverging, t));
    }
  return img;
}

}  // namespace strata
