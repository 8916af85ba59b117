"""An example third-party tlf plugin package: one dataset, backbone, policy and augmentation."""
from setuptools import setup

setup(
    name="tlf-plugin-example",
    version="0.1.0",
    description="Example tlf plugins: stripes dataset, smallcnn backbone, bn-only policy, grayscale augmentation, "
                "jsonl logger",
    license="MIT",
    python_requires=">=3.10",
    packages=["tlf_plugin_example"],
    install_requires=["tlf>=0.1"],
    entry_points={"tlf": ["example = tlf_plugin_example"]},
)
