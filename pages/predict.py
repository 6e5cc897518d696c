"""Predict: the 37 answers for your own images (uploaded or in a folder), as a table, a tree and a CSV."""

from pathlib import Path

import streamlit as st

from galaxy_core import tables, tree
from galaxy_core.data import catalog, fitsimages, images, layout
from galaxy_core.errors import DataError
from galaxy_core.predict import modelchoice, prediction
from galaxy_core.show import access, explore
from pages import _common as common
from pages import _models as ml
from pages._samp import samp_button

common.require_app(__file__)

st.title("Predict")
st.caption("The 37 Galaxy Zoo 2 answers for new images. Images are decoded exactly as for training (same field of "
           "view, size and resampling).")

model = ml.choose_model("pr_model")
if model is None:
    st.stop()
c1, c2, c3 = st.columns([3, 1, 1])
with c1:
    uploads = st.file_uploader(f"Images (JPEG, PNG or FITS; up to {access.MAX_UPLOAD_FILES:,} at a time)",
                               type=["jpg", "jpeg", "png", "fits", "fit", "fts", "gz"], accept_multiple_files=True,
                               key="pr_uploads", help="FITS: <id>.fits (one band, or a g, r, i cube) or the three "
                                                      "files <id>_g.fits, <id>_r.fits, <id>_i.fits",
                               max_upload_size=access.MAX_UPLOAD_MB)
    folder = st.text_input("...or a folder of images or a catalogue table on this machine", key="pr_folder",
                           help="Images directly in it, or in its images_training_rev1/ and images_test_rev1/; or "
                                "a catalogue table (.csv, .fits, .vot, .parquet) naming each galaxy's id and image "
                                "file, whose columns (RA, Dec, redshift ...) come along with the answers")
source_fov = c2.number_input("Source field of view", 0.05, 1.0, None, 0.01, format="%.4f", key="pr_fov",
                             placeholder="automatic",
                             help="The fraction of the 424 px Kaggle frame your images show: 1.0 for 424 px "
                                  "Galaxy Zoo cutouts, 0.6038 for the 96 px packs. Left empty, it is read from "
                                  "the folder's galaxy_core.json, else the images must be 424 px originals, "
                                  "exactly as `python -m galaxy_core predict` decides. The sidebar's field of view "
                                  "is the data folder's: it is not taken here, as these may be other images.")
tta = c3.slider("Test-time views", 1, 8, 1, key="pr_tta",
                help="Average the predictions over this many rotations and mirror images (1 = none).")
folder = folder.strip()
if not uploads and not folder:
    st.info("Upload some images or name a folder.")
    st.stop()
# Checked before anything is read: uploads one by one (a bad file is refused, the others predicted), a typed folder
# against the data roots.
try:
    if uploads:
        files, refused = access.check_uploads(uploads)
    else:
        files, refused, folder = [], [], str(access.allowed_folder(folder))
except (PermissionError, ValueError) as e:
    st.error(str(e))
    st.stop()
for r in refused:
    st.warning(f"Refused {r}")
if uploads and not files:
    st.stop()


@st.cache_data(show_spinner="Predicting ...", max_entries=8)
def predict_uploads(model_path: str, mtime_ns: int, files: tuple[tuple[str, bytes], ...], fov: float | None,
                    views: int):
    """Write the uploads to a temporary folder and predict them (cached by their bytes) with
    ``prediction.predict_folder``, the command line's ``predict``, which resolves the field of view itself. Its
    errors name the uploads, never the temporary folder (an unknown field of view is worded by the page)."""
    with access.temporary_uploads(files) as tmp:
        try:
            return prediction.predict_folder(tmp, ml.load_model(Path(model_path)), source_fov=fov, tta=views)
        except images.FieldUnknown:
            raise
        except (DataError, FileNotFoundError, ValueError) as e:
            raise DataError(access.upload_message(e, tmp)) from None


@st.cache_data(show_spinner=False, max_entries=64)
def fits_picture(files: tuple[tuple[str, bytes], ...] | None, path: str, gid: str):
    """The colour composite of one FITS galaxy (``fitsimages.read_rgb``, with its folder's composite settings), from
    the uploads (written to a temporary folder again) or from its file ``path``."""
    def picture(path: Path):
        return fitsimages.read_rgb(path, images.folder_fits_settings(path.parent))[0]

    if not files:
        return picture(Path(path))
    with access.temporary_uploads(files) as tmp:
        return picture(Path(catalog.list_images(tmp)[gid]))


@st.cache_data(show_spinner="Predicting ...", max_entries=8)
def predict_folder(model_path: str, mtime_ns: int, folder: str, fov: float | None, views: int, listing: tuple):
    """``prediction.predict_folder`` of the images ``listing`` names (``prediction.folder_listing``, which also
    keys the cache: an image added, removed or rewritten predicts again)."""
    return prediction.predict_folder(folder, ml.load_model(Path(model_path)), source_fov=fov, tta=views,
                                     paths=[p for p, _ in listing])


@st.cache_data(show_spinner=False, max_entries=8)
def download(model_path: str, mtime_ns: int, _result: prediction.FolderPrediction, digest: str, fmt: str,
             views: int) -> bytes:
    """The predictions as a file of ``fmt``, with the model's provenance (cached per prediction, by its
    ``digest``, and format)."""
    meta = tables.provenance(command="dashboard: Predict page", tta=views,
                             **modelchoice.provenance(ml.load_model(Path(model_path))))
    return _result.to_bytes(fmt, meta)


# Uploads are the user's own images, taken to be real galaxies.
ml.warn_domain(model, not uploads and layout.folder_is_synthetic(folder))
key = ml.model_key(model)
try:
    if uploads:
        result = predict_uploads(*key, tuple(files), source_fov, tta)
    else:
        result = predict_folder(*key, folder, source_fov, tta, prediction.folder_listing(folder))
except images.FieldUnknown as e:
    if uploads:  # pointed at the box beside the uploader; the sidebar's field is the data folder's
        st.error(access.upload_message(e, box="Source field of view",
                                       sidebar_fov=st.session_state.get("source_fov")))
    else:
        st.error(str(e))
    st.stop()
except (DataError, FileNotFoundError, ValueError) as e:
    st.error(str(e))
    st.stop()
frame = result.frame
st.caption(f"Field of view: {result.source_fov:.4f} of the 424 px frame ({result.fov_origin}).")
for s in result.skipped:
    st.warning(f"Skipped {Path(s['path']).name}: {s['reason']}")
if frame.empty:
    st.stop()

st.subheader(f"{len(frame):,} galaxies")
c1, c2, c3 = st.columns([1, 2, 2])
fmt = c1.selectbox("Format", list(tables.DOWNLOADS), key="pr_format",
                   help="CSV is the Kaggle format (with your catalogue's columns when there is one); FITS, VOTable "
                        "and Parquet keep units and say which model made the table, for TOPCAT, Aladin or astropy.")
chosen = tables.DOWNLOADS[fmt]
with c2:
    st.write("")  # aligns the buttons with the box beside them
    st.download_button(f"Download the {fmt} table", download(*key, result, result.digest(), chosen, tta),
                       file_name=f"predictions.{tables.EXTENSION[chosen]}", key="pr_download")
with c3:
    st.write("")
    samp_button(result.sky_table(), "predictions", key="pr_samp")
st.dataframe(result.table().rename(columns={c: explore.label(c) for c in tree.COLUMNS}), hide_index=True,
             column_config={explore.label(c): st.column_config.NumberColumn(format="%.3f") for c in tree.COLUMNS})

st.subheader("As the decision tree")
gid = st.selectbox("Galaxy", list(frame["GalaxyID"]), key="pr_pick")
c1, c2 = st.columns([1, 2])
with c1:
    path = result.path_of(gid)  # of uploads: the temporary folder's file, under the uploaded name
    if fitsimages.is_fits(path):
        shown = fits_picture(tuple(files) if uploads else None, str(path), gid)
    else:
        shown = dict(files)[path.name] if uploads else str(path)
    st.image(shown, caption=gid, width="stretch")
with c2:
    common.tree_chart(result.answers(gid), names=("model", ""), key="pr_tree")
