//! OpenBSD: pinholes as pf anchors through /dev/pf ioctls. (Pending.)
