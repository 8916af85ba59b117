"""``tlf bench``: how fast training can go on this machine, and what holds it back.

For each backbone it measures, interleaved and repeated within a time budget, the model
alone (:mod:`.ceiling`), tlf's data pipeline alone (:mod:`.pipeline`), a naive torchvision
loop with the same model (:mod:`.naive`), and names the bottleneck (:mod:`.verdict`).
"""
