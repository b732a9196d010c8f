"""Published numbers printed beside ours in ``report.md`` (copied from the papers'
tables; "-" = not reported). Paper 000: Lee et al. 2024, Tables 3-7. Paper 004:
Pourmirzaei et al., Tables 2-3 (AFLW2000: full set, and "*" = without the 31 samples
beyond +-99 degrees)."""

# Table 3: method, training set, LFW, CFP-FP, AgeDB, IJB-C TAR@FAR=1e-4 (%), FPS
TABLE3 = [
    ("SphereFace (Re-Imp)", "MS1MV2", 99.67, 98.46, 98.17, 91.77, None),
    ("CosFace (Re-Imp)", "MS1MV2", 99.78, 98.26, 98.17, 95.56, None),
    ("CurricularFace", "MS1MV2", 99.80, 98.37, 98.32, 96.10, 329.8),
    ("ArcFace", "MS1MV3", 99.83, 99.03, 98.17, 96.5, 331.5),
    ("MagFace", "MS1MV2", 99.83, 98.46, 98.17, 95.97, 254.3),
    ("Partial FC", "MS1MV3", 99.85, 98.7, 98.11, 96.08, 255.1),
    ("SwinFace", "MS1MV2", 99.87, 98.60, 98.15, 96.73, 70.3),
    ("Lee et al. (STL) IResNet50", "PLTD", 99.72, 97.73, 96.90, 94.05, 253.2),
    ("Lee et al. (MTL) IResNet50-Multi", "PLTD", 99.70, 97.26, 96.53, 94.17, 221.2),
]

# Table 4: model -> case -> TAR (%) at FAR 1e-5, 1e-4, 1e-3, 1e-2, 1e-1
TABLE4_FARS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
TABLE4 = {
    "Lee et al. (STL)": {"all": (90.73, 94.05, 96.28, 97.89, 98.95), "soft": (89.03, 92.5, 94.94, 96.77, 98.23),
                         "medium": (76.41, 84.19, 89.31, 93.51, 96.47), "hard": (55.34, 68.27, 77.64, 85.96, 92.9)},
    "Lee et al. (MTL)": {"all": (89.86, 94.17, 96.6, 97.95, 98.95), "soft": (87.18, 92.42, 95.26, 96.96, 98.43),
                         "medium": (77.21, 86.03, 91.27, 94.57, 96.99), "hard": (56.64, 71.48, 81.49, 88.62, 94.23)},
}

# Tables 5 (AFLW2000-3D) and 6 (BIWI): method, yaw, pitch, roll, MAE (deg), FPS
TABLE5 = [
    ("HopeNet", 6.47, 6.56, 5.44, 6.16, 323.2),
    ("FSANet", 4.5, 6.08, 4.64, 5.07, 389.6),
    ("3DDFA-V2", 4.06, 5.26, 3.48, 4.27, None),
    ("TriNet", 4.2, 5.77, 4.04, 3.97, 311.3),
    ("RankPose", 2.99, 4.75, 3.25, 3.66, 291.7),
    ("SynergyNet", 3.42, 4.09, 2.55, 3.35, 128.1),
    ("Lee et al. (pretrained)", 2.89, 4.77, 3.35, 3.67, 320.8),
    ("Lee et al. (MTL)", 2.80, 4.27, 2.9, 3.32, 221.2),
]
TABLE6 = [
    ("HopeNet", 4.81, 6.61, 3.27, 4.90, 323.2),
    ("FSANet", 4.27, 4.96, 2.76, 4.00, 389.6),
    ("TriNet", 4.11, 4.76, 3.05, 3.97, 311.3),
    ("RankPose", 3.59, 4.77, 2.76, 3.71, 291.7),
    ("Lee et al. (pretrained)", 4.34, 5.18, 2.61, 4.04, 320.8),
    ("Lee et al. (MTL)", 3.23, 5.03, 2.36, 3.54, 221.2),
]

# Table 7: method, NME (%) for |yaw| [0,30], (30,60], (60,90], mean, FPS
TABLE7 = [
    ("3D-FAN", 3.16, 3.53, 4.6, 3.76, 84.3),
    ("PRNet", 2.75, 3.51, 4.61, 3.62, 261.3),
    ("3DDFA-v2", 2.63, 3.42, 4.48, 3.51, None),
    ("SynergyNet", 2.65, 3.30, 4.27, 3.41, 128.1),
    ("Lee et al. (pretrained)", 3.08, 3.74, 4.53, 3.78, 322.5),
    ("Lee et al. (MTL)", 2.62, 3.45, 4.51, 3.53, 221.2),
]

# Paper 004 Table 2 (AFLW2000; reduced = the +-99 filter) and Table 3 (BIWI):
# method, reduced set?, yaw, pitch, roll, average
P004_TABLE2 = [
    ("HopeNet", True, 6.47, 6.559, 5.436, 6.155),
    ("FSA-Caps-Fusion", True, 4.5, 6.08, 4.64, 5.07),
    ("Img2pose", True, 3.426, 5.034, 3.278, 3.913),
    ("SL (HopeNet re-impl.), aug 2", False, 5.278, 7.987, 6.638, 6.634),
    ("SL (HopeNet re-impl.), aug 2", True, 6.221, 5.569, 3.984, 5.258),
    ("HMTL 3x3 puzzling, aug 2", False, 3.742, 7.796, 6.496, 6.011),
    ("HMTL 3x3 puzzling, aug 2", True, 3.874, 5.929, 4.416, 4.74),
    ("HMTL 3x3 puzzling, aug 2, ETH-XGaze SSL rotation", True, 3.682, 5.919, 4.316, 4.639),
]
P004_TABLE3 = [
    ("HopeNet", 4.810, 6.606, 3.269, 4.895),
    ("FSA-Caps-Fusion", 4.27, 4.96, 2.76, 4.0),
    ("WHENet", 3.60, 4.10, 2.73, 3.48),
    ("SL (HopeNet re-impl.)", 4.322, 5.94, 3.113, 4.458),
    ("HMTL 3x3 puzzling", 4.123, 5.317, 3.059, 4.166),
    ("HMTL 3x3 puzzling, ETH-XGaze SSL rotation", 3.864, 4.641, 2.962, 3.822),
]
