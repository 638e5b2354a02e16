"""Training losses: :mod:`.style` (content, Gram and mean/std style, total variation) and :mod:`.gan`
(hinge, feature matching, KL, VGG perceptual)."""
