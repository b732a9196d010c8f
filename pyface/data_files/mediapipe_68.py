"""MediaPipe face mesh (468 vertices) -> iBUG 68 points: each iBUG point is one
MediaPipe vertex or the mean of two.

Source: the correspondence published by Peizhi Yan,
github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks (MIT), as used by
tools/derive_mean_shape.py to derive pyface's mean 3D face from MediaPipe's canonical
face model. It is the labeler's default 468 -> 68 index map;
``pyface label fit-index-map`` learns one from data as the paper does (Fig. 5).
"""

MP_TO_IBUG68 = [
    [127], [234], [93], [132, 58], [58, 172], [136], [150], [176], [152],  # jaw 0-8
    [400], [379], [365], [397, 288], [361], [323], [454], [356],  # jaw 9-16
    [70], [63], [105], [66], [107],  # right brow 17-21
    [336], [296], [334], [293], [300],  # left brow 22-26
    [168, 6], [197, 195], [5], [4], [75], [97], [2], [326], [305],  # nose 27-35
    [33], [160], [158], [133], [153], [144],  # right eye 36-41
    [362], [385], [387], [263], [373], [380],  # left eye 42-47
    [61], [39], [37], [0], [267], [269], [291], [321], [314], [17], [84], [91],  # outer lips 48-59
    [78], [82], [13], [312], [308], [317], [14], [87],  # inner lips 60-67
]
