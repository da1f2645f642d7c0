"""The fake WalkMe API lives in the package (the demo ships it); tests import it from here."""

from walkme_dic_dev.fake_walkme import FakeWalkMe

__all__ = ["FakeWalkMe"]
