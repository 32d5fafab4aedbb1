// The built-in bitmap font behind Image::draw_text: 5 × 8 glyphs (7 rows above the baseline, one
// descender row) for printable ASCII, drawn on a 6-pixel advance.
#pragma once

#include <cstdint>
#include <string>

namespace strata::detail {

/// Glyph box in font pixels (times the text scale when drawn).
constexpr int kGlyphWidth = 5;
constexpr int kGlyphHeight = 8;
/// Horizontal distance between the left edges of two neighbouring glyphs.
constexpr int kGlyphAdvance = 6;

/// The kGlyphWidth column bitmasks of `c` (bit 0 = top row); bytes outside ' '..'~' give '?'.
const uint8_t* glyph_columns(char c);

/// `text` as the characters the font draws: printable ASCII as is, each UTF-8 sequence (a lead
/// byte and its continuation bytes) or other byte as one '?'.
std::string font_chars(const std::string& text);

}  // namespace strata::detail
