// Relevance heatmaps over an input image, drawn as users know them from Zennit: relevance summed
// over the colour channels, scaled symmetrically by its largest absolute value, blue (negative) -
// white (zero) - red (positive) (Zennit's `bwr` map); optionally side by side with the image.
//
//   strata::Image img = strata::relevance_image(r.relevance[0], {.image = pixels[0]});
//   img.save_png("heat.png");
#pragma once

#include <ATen/core/Tensor.h>
#include <strata/report/image.h>

#include <cstdint>
#include <string>

namespace strata {

/// Options for relevance_image().
struct RelevanceImageOptions {
  at::Tensor image;   ///< optional [3, H, W] or [H, W, 3] picture in [0, 255], drawn on the left
  int64_t scale = 1;  ///< each relevance pixel becomes scale x scale output pixels
  std::string title;  ///< optional text above the picture
  double symmetric_max = 0;  ///< colour range [-m, m]; 0: the largest |relevance|

  /// Sets image.
  RelevanceImageOptions& set_image(at::Tensor v) {
    image = std::move(v);
    return *this;
  }
  /// Sets scale.
  RelevanceImageOptions& set_scale(int64_t v) {
    scale = v;
    return *this;
  }
  /// Sets title.
  RelevanceImageOptions& set_title(std::string v) {
    title = std::move(v);
    return *this;
  }
};

/// Draws relevance of shape [C, H, W] (summed over C) or [H, W]; other shapes throw strata::Error.
Image relevance_image(const at::Tensor& relevance, const RelevanceImageOptions& options = {});

}  // namespace strata
