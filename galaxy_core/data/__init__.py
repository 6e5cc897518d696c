"""Images in, the cache out: the first stage of the data's trip.

``layout`` (a data folder's conventions and ``galaxy_core.json``), ``fitsimages`` (FITS cutouts as RGB), ``images``
(one image decoded, cropped and resized, or why not), ``catalogue_table`` (a catalogue table of ids, files and
RA/Dec, read and checked), ``crossmatch`` (a second catalogue's columns by sky position), ``catalog`` (a data
folder's galaxies, files and labels), ``prepare`` (the folder decoded once into the cache) and ``cache``
(``GalaxyCache``: the memory-mapped uint8 images, labels, mask and seeded split that every later stage reads).
"""
