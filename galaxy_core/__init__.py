"""galaxy_core: Galaxy Zoo 2 morphology, from images to the 37 decision-tree answers and what they are used for.

One module per job, importing only downhill (``tests/test_package.py`` checks); nothing here imports Streamlit: the
dashboard's pages read widgets, call these functions and draw. Roughly in the order the data flows::

    the data format
      tree            the decision tree: 11 questions, 37 answers, as data
      settings        a data folder's layout and galaxy_core.json; the Kaggle frame and the default field of view
      files           atomic writes, progress, the input errors, work cut into parts
      tables          astronomers' tables in and out: CSV, FITS, VOTable, Parquet, with units and provenance
    images in
      fitsimages      FITS cutouts as the RGB picture a JPEG of them would be
      images          one image decoded, cropped and resized (or why not); many on a process pool; a folder's field
      sky             a catalogue table: ids, image files, RA/Dec in degrees, other columns, labels
      catalog         a data folder, plain folder or catalogue table: its galaxies, their image files and labels
      data            the memory-mapped uint8 cache, its labels, mask and seeded split
      explore         counts, sizes, memory, histograms, correlations, the most typical galaxies
      synthetic       made-up galaxies: kinds, parameters, labels that obey the tree
      render          one synthetic galaxy drawn as an SDSS-like cutout
      demo            the built-in synthetic demo folder, made on first use
    models and training
      models          the registry: features + decision-tree head, saved as safetensors + JSON
      views           crops, training augmentation, the 8 dihedral views
      hardware        the device, native bf16 on the CPU, fast math, the allocator
      config          TrainConfig and the recipes (GPU and CPU)
      metrics         RMSE over the known answers
      staging         the training images on the device or streamed from the cache
      ema             a moving average of the weights
      checkpoint      a run's best/ and last/ checkpoints
      distributed     several processes under torchrun
      distill         teachers' soft targets for the answers no volunteer gave
      training        the loop
      estimate        how long a training takes on this machine
      runs            run folders: metrics.csv and status; launching, stopping and listing runs
      benchmark       every model trained on one split, one table
    answers
      inference       BatchNorm folded; batched, multi-view inference and embedding (or each view's answers)
      modelchoice     which model (the shipped checkpoint, else the newest run; an ensemble's members); loading it
      plusminus       what a page shows with a spread: value ± c x spread, P(above a threshold), the count, least sure
      uncertainty     a spread beside each answer (the views', an ensemble's), whether it means anything, its scale
      store           a cache's stored predictions
      prediction      the 37 answers (with spreads on request) for a cache, image files or a folder; the Kaggle CSV
      evaluation      RMSE per answer and question, true vs predicted, top-k galleries
      doubt           a model's spread for galaxies of a cache, scaled on the galaxies it never learnt from
      export          a run as a checkpoint folder; replacing the shipped default
    what the answers are for
      merger_fraction     the merger fraction with its intervals, against Lotz et al. (2011)
      merger_calibration  the model's mergers against the volunteers'
      merger_evolution    the fraction in bins of a catalogue column (redshift, mass); f(z) = R0 (1+z)^m x T
      mergers             every method on the same galaxies, as the CLI and the Mergers page show them
      morphology          statmorph's Gini, M20 and asymmetry
      embeddings          one vector per galaxy from a model's backbone
      similarity          nearest neighbours, the unusual galaxies, PCA and faiss
      labels              a yes/no question of one's own learnt from marked galaxies; when p(yes) is a probability
      finetune            the backbone's last stage tuned to that question
    catalogues
      crossmatch      a second catalogue's columns by sky position (astropy's nearest match within a separation)
    out
      figures         every plotly figure the dashboard and the CLI draw
      skyviews        where a galaxy is, for people: RA/Dec as text, sky-viewer links, the sky map, galleries
      access          what a dashboard user may read: data roots and upload checks
      samp            tables and sky positions sent to TOPCAT and Aladin over SAMP
      cli             ``python -m galaxy_core``, a package of commands grouped by job
"""

__version__ = "0.1.0"
