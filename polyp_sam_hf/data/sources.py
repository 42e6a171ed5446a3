"""The five public polyp datasets: one registry entry each.

Every place that needs to know a dataset's folder names, its display name or its citation reads
it from `SOURCES`, so adding a sixth dataset is one entry here.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from polyp_sam_hf.core.registry import by_name, lookup


@dataclass(frozen=True)
class ReleaseNaming:
    """How a release names a frame's files where frame and mask do not share a file name: frame
    `N.tif` with mask `pN.tif` (CVC-ColonDB, ETIS-LaribPolypDB).

    Attributes:
        images: the folder of the frames, relative to the release folder ("." for itself).
        masks: the folder of the masks.
        mask_prefix: frame `N`'s mask is `{mask_prefix}N`, any image extension.
        other_files: prefixes of the other files the release ships beside them, and what they are
            (left out and listed as such: CVC-ColonDB's contours `cpN.tiff`).
    """

    images: str
    masks: str
    mask_prefix: str
    other_files: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PolypSource:
    """One public polyp dataset.

    Attributes:
        name: The value of the dataset's `source` column (`kvasir`, `cvc-clinicdb`, ...).
        display_name: The name papers print in their tables.
        pranet_test_dir: The folder name under PraNet's `TestDataset/`.
        release_dirs: Folder names of the original release at a data root.
        citation: BibTeX-free short citation, for reports and model cards.
        terms: The licence or terms of use as the publisher states them.
        paper_test_frames: How many frames the paper's test set of this dataset holds (PraNet's
            TestDataset), printed beside the frames a table was computed on.
        release_naming: how the original release names a frame's mask where it is not the frame's
            own file name; None where it is (paired by name, in `layouts.PAIR_FOLDERS`).
        sequences: For a dataset of numbered video frames, `(first frame, sequence)` of each video
            sequence in frame order, as the release's README tables them (CVC-ColonDB numbers its
            15 studies out of frame order); empty where frames are independent.
    """

    name: str
    display_name: str
    pranet_test_dir: str
    release_dirs: tuple[str, ...]
    citation: str
    terms: str
    paper_test_frames: int
    release_naming: ReleaseNaming | None = None
    sequences: tuple[tuple[int, int], ...] = ()

    @property
    def has_sequences(self) -> bool:
        return bool(self.sequences)

    def sequence_of(self, image_id: str) -> str:
        """The video sequence a frame was taken from (`"7"`), or the frame's own id where the
        dataset records no sequences: frames of one sequence are near copies, so they must stay
        on one side of a split, and results are reported per sequence."""
        if not self.sequences or not image_id.isdigit():
            return image_id
        index = bisect.bisect_right([first for first, _ in self.sequences], int(image_id)) - 1
        return str(self.sequences[index][1]) if index >= 0 else image_id


SOURCES: dict[str, PolypSource] = by_name(
    PolypSource(
        name="kvasir",
        display_name="Kvasir-SEG",
        pranet_test_dir="Kvasir",
        release_dirs=("Kvasir-SEG", "kvasir-seg"),
        citation="Jha et al., Kvasir-SEG: A Segmented Polyp Dataset, MMM 2020.",
        terms="CC BY 4.0",
        paper_test_frames=100,
    ),
    PolypSource(
        name="cvc-clinicdb",
        display_name="CVC-ClinicDB",
        pranet_test_dir="CVC-ClinicDB",
        release_dirs=("CVC-ClinicDB",),
        citation="Bernal et al., WM-DOVA maps for accurate polyp highlighting in colonoscopy, "
        "CMIG 2015.",
        terms="Academic, non-commercial research use with citation.",
        paper_test_frames=62,
        # the release README's table: 612 frames from 29 sequences (1-25, 26-50, ..., 592-612)
        sequences=tuple((first, n) for n, first in enumerate(
            (1, 26, 51, 68, 79, 104, 127, 152, 178, 200, 206, 228, 253, 278, 298, 318, 343, 364, 384, 409, 429, 448,
             467, 479, 504, 529, 547, 572, 592), start=1)),
    ),
    PolypSource(
        name="cvc-colondb",
        display_name="CVC-ColonDB",
        pranet_test_dir="CVC-ColonDB",
        release_dirs=("CVC-ColonDB",),
        citation="Bernal et al., Towards automatic polyp detection with a polyp appearance "
        "model, Pattern Recognition 2012.",
        terms="Academic, non-commercial research use with citation.",
        paper_test_frames=380,
        # one folder: frame `N.tiff`, its mask `pN.tiff` and its contour `cpN.tiff` (the release README)
        release_naming=ReleaseNaming(".", ".", "p", (("cp", "the polyp's contour, not its mask"),)),
        # the release README's table: 380 frames from 15 video studies, numbered out of frame order
        # (frames 1-300 are the 2012 paper's; its README warns that studies 4 and 8 show fecal content
        # and 12 a poor view of the polyp)
        sequences=((1, 1), (39, 2), (61, 3), (77, 5), (98, 6), (149, 7), (156, 9), (204, 10), (209, 11), (264, 14),
                   (274, 15), (301, 4), (321, 8), (341, 12), (361, 13)),
    ),
    PolypSource(
        name="etis",
        display_name="ETIS-LaribPolypDB",
        pranet_test_dir="ETIS-LaribPolypDB",
        release_dirs=("ETIS-LaribPolypDB",),
        citation="Silva et al., Toward embedded detection of polyps in WCE images for early "
        "diagnosis of colorectal cancer, IJCARS 2014.",
        terms="CC BY-NC-SA 4.0",
        paper_test_frames=196,
        # frame `ETIS-LaribPolypDB/N.tif`, its mask `Ground Truth/pN.tif`
        release_naming=ReleaseNaming("ETIS-LaribPolypDB", "Ground Truth", "p"),
    ),
    PolypSource(
        name="cvc-300",
        display_name="CVC-300",
        pranet_test_dir="CVC-300",
        release_dirs=("CVC-300", "EndoScene-CVC300"),
        citation="Vázquez et al., A benchmark for endoluminal scene segmentation of "
        "colonoscopy images, Journal of Healthcare Engineering 2017.",
        terms="Academic, non-commercial research use with citation.",
        paper_test_frames=60,
    ),
)

# Kvasir-SEG ids are 25 lower-case alphanumerics (`cju0qkwl35piu0993l0dewei2`); CVC-ClinicDB
# frames are numbered. PraNet's TrainDataset mixes the two, so the name is all that tells them apart.
_KVASIR_ID = re.compile(r"^[a-z0-9]{25}$")
_CLINICDB_ID = re.compile(r"^\d+$")


def get_source(name: str) -> PolypSource:
    """Return the registry entry called `name`; a `ValueError` lists the valid names otherwise."""
    return lookup(SOURCES, name, "polyp source", "sources")


def source_from_pranet_train_name(stem: str) -> str | None:
    """Tell the source of a PraNet `TrainDataset` file from its stem, or `None` if neither matches.

    >>> source_from_pranet_train_name("cju0qkwl35piu0993l0dewei2")
    'kvasir'
    >>> source_from_pranet_train_name("118")
    'cvc-clinicdb'
    """
    if _KVASIR_ID.match(stem):
        return "kvasir"
    if _CLINICDB_ID.match(stem):
        return "cvc-clinicdb"
    return None


def source_for_pranet_test_dir(dirname: str) -> str | None:
    """The source whose PraNet test folder is `dirname` (exact match), else `None`."""
    for source in SOURCES.values():
        if source.pranet_test_dir == dirname:
            return source.name
    return None


def source_for_release_dir(dirname: str) -> str | None:
    """The source whose original-release folder is `dirname` (exact match), else `None`."""
    for source in SOURCES.values():
        if dirname in source.release_dirs:
            return source.name
    return None


def frame_key(source: str, image_id: str) -> str:
    """`source/image_id`: a frame's name across datasets (cache index, masks on disk, reports)."""
    return f"{source}/{image_id}"
